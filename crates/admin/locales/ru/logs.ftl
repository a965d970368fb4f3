# logs
