enum DockerModule {}
