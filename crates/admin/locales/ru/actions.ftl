# actions
