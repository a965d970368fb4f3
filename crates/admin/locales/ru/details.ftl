# details
