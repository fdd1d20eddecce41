// Linux calls Swift's Glibc module hides behind _GNU_SOURCE: O_PATH descriptors, pipe2, and
// posix_spawn's chdir action. Declared without system headers so this module's view of libc
// cannot clash with Glibc's; defined in shim.c.
#ifndef CBDSYSTEM_H
#define CBDSYSTEM_H

int bd_o_path(void);
int bd_pipe_cloexec(int fds[2]);
/// `actions` is a posix_spawn_file_actions_t *.
int bd_spawn_add_chdir(void *actions, const char *path);

#endif
