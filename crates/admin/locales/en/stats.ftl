# stats
