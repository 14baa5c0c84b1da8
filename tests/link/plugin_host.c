/* plugin_host.c: a program without zmalloc that loads a plugin linked with
 * it (dlopen, RTLD_LOCAL as plugin hosts do) and runs the API suite inside
 * the plugin (tests/test_api.c compiled in as zm_plugin_api_suite). The host
 * allocates with libc's malloc around the call. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    char *mine = malloc(1000);
    memset(mine, 1, 1000);
    void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        fprintf(stderr, "dlopen %s: %s\n", argv[1], dlerror());
        return 3;
    }
    int (*suite)(void) = (int (*)(void))dlsym(h, "zm_plugin_api_suite");
    if (!suite) {
        fprintf(stderr, "dlsym: %s\n", dlerror());
        return 4;
    }
    int rc = suite();
    free(mine);
    return rc;
}
