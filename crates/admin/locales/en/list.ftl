# list
