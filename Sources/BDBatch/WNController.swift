// The batch module (working-node and accounting controllers) arrives with the batch issue.
enum BatchModule {}
