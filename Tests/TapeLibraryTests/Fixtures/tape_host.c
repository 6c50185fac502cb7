/* A minimal dpm host for the TapeLibrary tests: loads a tier plugin through dpm_plugin.h
 * exactly as dpm does (dlopen, dpm_plugin_entry, describe, tier_ops) and runs one call per
 * process, the way every dpm command and job is its own process.
 *
 *   tape_host PLUGIN.so STATE_DIR WAIT_SECONDS command VERB ARGS_JSON   reply on stdout
 *   tape_host PLUGIN.so STATE_DIR WAIT_SECONDS store REQUEST_JSON        archive on stdin
 *   tape_host PLUGIN.so STATE_DIR WAIT_SECONDS read NAME                 archive on stdout
 *   tape_host PLUGIN.so STATE_DIR WAIT_SECONDS list
 * Exit status: the dpm_status of the failing call (its message on stderr), else 0.
 * `store` prints "writing" on stderr after its first write, so a test can kill it mid-file. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "dpm_plugin.h"

struct dpm_buffer { char *data; size_t len, cap; };
static const char *state_dir, *wait_seconds;

static void host_log(dpm_call *call, int32_t level, const char *message) { (void)call; fprintf(stderr, "log %d: %s\n", level, message); }
static void host_progress(dpm_call *call, uint64_t done, uint64_t total) { (void)call; (void)done; (void)total; }
static int32_t host_cancelled(dpm_call *call) { (void)call; return 0; }
static dpm_status host_config(dpm_call *call, const char *key, char *value, size_t size, size_t *len) {
    (void)call;
    const char *found = !strcmp(key, "state_dir") ? state_dir : !strcmp(key, "wait_seconds") ? wait_seconds : NULL;
    if (!found) return DPM_ERR_NOT_FOUND;
    *len = strlen(found);
    snprintf(value, size, "%s", found);
    return DPM_OK;
}
static dpm_status host_append(dpm_buffer *buffer, const void *data, size_t len) {
    if (buffer->len + len + 1 > buffer->cap) {
        buffer->cap = (buffer->len + len + 1) * 2;
        buffer->data = realloc(buffer->data, buffer->cap);
        if (!buffer->data) return DPM_ERR_INTERNAL;
    }
    memcpy(buffer->data + buffer->len, data, len);
    buffer->len += len;
    buffer->data[buffer->len] = 0;
    return DPM_OK;
}

static int fail(dpm_status status, const char *what, const char *err) {
    fprintf(stderr, "%s failed (%d): %s\n", what, status, err);
    return status;
}

int main(int argc, char **argv) {
    if (argc < 5) { fprintf(stderr, "usage: tape_host PLUGIN STATE_DIR WAIT VERB ...\n"); return 64; }
    state_dir = argv[2];
    wait_seconds = argv[3];
    void *library = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
    if (!library) { fprintf(stderr, "dlopen: %s\n", dlerror()); return 65; }
    dpm_status (*entry)(const dpm_host_api *, dpm_plugin_api *, char *, size_t) = dlsym(library, DPM_PLUGIN_ENTRY_SYMBOL);
    if (!entry) { fprintf(stderr, "no entry symbol\n"); return 65; }
    static dpm_host_api host;
    host.size = sizeof host; host.abi_version = DPM_ABI_VERSION; host.log = host_log; host.progress = host_progress;
    host.cancelled = host_cancelled; host.config_get = host_config; host.buffer_append = host_append;
    dpm_plugin_api plugin; memset(&plugin, 0, sizeof plugin); plugin.size = sizeof plugin;
    char err[4096] = "";
    dpm_status status = entry(&host, &plugin, err, sizeof err);
    if (status) return fail(status, "entry", err);
    dpm_provider_info info; memset(&info, 0, sizeof info); info.size = sizeof info;
    if ((status = plugin.describe(0, &info, err, sizeof err))) return fail(status, "describe", err);
    dpm_tier_ops ops; memset(&ops, 0, sizeof ops); ops.size = sizeof ops;
    if ((status = plugin.tier_ops(0, &ops, err, sizeof err))) return fail(status, "tier_ops", err);
    dpm_buffer out = {0};
    const char *verb = argv[4];
    if (!strcmp(verb, "command") && argc >= 7) {
        size_t size = strlen(argv[5]) + strlen(argv[6]) + 32;
        char *request = malloc(size);
        snprintf(request, size, "{\"verb\":\"%s\",\"args\":%s}", argv[5], argv[6]);
        if ((status = ops.command(info.provider, NULL, request, &out, err, sizeof err))) return fail(status, "command", err);
    } else if (!strcmp(verb, "list")) {
        if ((status = ops.list(info.provider, NULL, "{}", &out, err, sizeof err))) return fail(status, "list", err);
    } else if (!strcmp(verb, "store") && argc >= 6) {
        void *writer = NULL;
        if ((status = ops.store_begin(info.provider, NULL, argv[5], &writer, err, sizeof err))) return fail(status, "store_begin", err);
        static char chunk[200000];
        size_t count, total = 0;
        while ((count = fread(chunk, 1, sizeof chunk, stdin)) > 0) {
            if ((status = ops.store_write(info.provider, writer, chunk, count, err, sizeof err))) {
                ops.store_finish(info.provider, writer, NULL, 0, &out, err, sizeof err);
                return fail(status, "store_write", err);
            }
            if (total == 0) { fprintf(stderr, "writing\n"); fflush(stderr); }
            total += count;
        }
        if ((status = ops.store_finish(info.provider, writer, NULL, 1, &out, err, sizeof err))) return fail(status, "store_finish", err);
    } else if (!strcmp(verb, "read") && argc >= 6) {
        size_t size = strlen(argv[5]) + 16;
        char *request = malloc(size);
        snprintf(request, size, "{\"name\":\"%s\"}", argv[5]);
        void *reader = NULL;
        dpm_buffer description = {0};
        if ((status = ops.read_begin(info.provider, NULL, request, &reader, &description, err, sizeof err))) return fail(status, "read_begin", err);
        static char chunk[1 << 20];
        size_t count = 0;
        for (;;) {
            if ((status = ops.read(info.provider, reader, chunk, sizeof chunk, &count, err, sizeof err))) {
                ops.read_end(info.provider, reader);
                return fail(status, "read", err);
            }
            if (count == 0) break;
            fwrite(chunk, 1, count, stdout);
        }
        ops.read_end(info.provider, reader);
        fflush(stdout);
        return 0;
    } else {
        fprintf(stderr, "unknown verb %s\n", verb);
        return 64;
    }
    if (out.data) fputs(out.data, stdout);
    putchar('\n');
    return 0;
}
