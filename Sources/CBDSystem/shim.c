#define _GNU_SOURCE
#include <fcntl.h>
#include <spawn.h>
#include <unistd.h>
#include "CBDSystem.h"

int bd_o_path(void) { return O_PATH; }

int bd_pipe_cloexec(int fds[2]) { return pipe2(fds, O_CLOEXEC); }

int bd_spawn_add_chdir(void *actions, const char *path) {
    return posix_spawn_file_actions_addchdir_np((posix_spawn_file_actions_t *)actions, path);
}
