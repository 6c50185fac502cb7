/*
 * example_plugin.c: a complete dpm workload provider written in C, against dpm_plugin.h alone.
 *
 * Provider "example-files" protects the regular files of one folder as block data sources
 * (like disks at rest): each file is a data source with one block stream. It shows
 *   - the entry point and both tables (sizes, versions, strings with static storage);
 *   - enumerate, snapshot_prepare/extents/read/finish, with JSON built by hand;
 *   - configuration through host->config_get ("directory");
 *   - errors: a status code plus a message that names the object and the fix.
 *
 * Build:
 *   cc -shared -fPIC -fvisibility=hidden -I Sources/PluginAPI/C/include \
 *      examples/c-plugin/example_plugin.c -o libExampleFiles.so
 * Use:
 *   dpm config set example-files.directory /srv/images
 *   DPM_PLUGIN_PATH=$PWD dpm datasources list
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dpm_plugin.h"

#ifndef EXAMPLE_PROVIDER_ID
#define EXAMPLE_PROVIDER_ID "example-files"
#endif

static const dpm_host_api *g_host;

/* ---- small helpers ------------------------------------------------------------------ */

/* Appends a NUL-terminated string to a host buffer. */
static dpm_status put(dpm_buffer *out, const char *text) {
    return g_host->buffer_append(out, text, strlen(text));
}

/* Appends `text` as a JSON string literal, escaping quotes, backslashes and controls. */
static dpm_status put_json_string(dpm_buffer *out, const char *text) {
    dpm_status status = put(out, "\"");
    for (const unsigned char *p = (const unsigned char *)text; status == DPM_OK && *p; p++) {
        char escaped[8];
        if (*p == '"' || *p == '\\') {
            snprintf(escaped, sizeof escaped, "\\%c", *p);
        } else if (*p < 0x20) {
            snprintf(escaped, sizeof escaped, "\\u%04x", *p);
        } else {
            escaped[0] = (char)*p;
            escaped[1] = '\0';
        }
        status = put(out, escaped);
    }
    return status == DPM_OK ? put(out, "\"") : status;
}

/* Reads the folder this provider protects from the host's configuration. */
static dpm_status configured_directory(dpm_call *call, char *dir, size_t size, char *err, size_t err_size) {
    size_t length = 0;
    if (g_host->config_get(call, "directory", dir, size, &length) != DPM_OK || length == 0) {
        dpm_set_error(err, err_size, "no folder is configured; set it with "
                                     "`dpm config set " EXAMPLE_PROVIDER_ID ".directory DIR`");
        return DPM_ERR_INVALID;
    }
    if (length >= size) {
        dpm_set_error(err, err_size, "the configured folder path is too long");
        return DPM_ERR_INVALID;
    }
    return DPM_OK;
}

/* Extracts the string value of "key" from a flat JSON object the host sent. The host's
 * requests put plain file names here; a real plugin would use a JSON parser. */
static int json_string_field(const char *json, const char *key, char *value, size_t size) {
    char pattern[64];
    snprintf(pattern, sizeof pattern, "\"%s\":\"", key);
    const char *start = strstr(json, pattern);
    if (!start) return 0;
    start += strlen(pattern);
    const char *end = strchr(start, '"');
    if (!end || (size_t)(end - start) >= size) return 0;
    memcpy(value, start, (size_t)(end - start));
    value[end - start] = '\0';
    return 1;
}

/* ---- workload operations ---------------------------------------------------------------- */

static dpm_status example_enumerate(void *provider, dpm_call *call, dpm_buffer *out, char *err, size_t err_size) {
    (void)provider;
    char dir[4096];
    dpm_status status = configured_directory(call, dir, sizeof dir, err, err_size);
    if (status != DPM_OK) return status;
    DIR *folder = opendir(dir);
    if (!folder) {
        char message[8192];
        snprintf(message, sizeof message, "cannot open folder %s: %s; check "
                 EXAMPLE_PROVIDER_ID ".directory", dir, strerror(errno));
        dpm_set_error(err, err_size, message);
        return DPM_ERR_NOT_FOUND;
    }
    put(out, "[");
    int first = 1;
    struct dirent *entry;
    while ((entry = readdir(folder)) != NULL) {
        char path[8192];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, entry->d_name);
        if (entry->d_name[0] == '.' || stat(path, &st) != 0 || !S_ISREG(st.st_mode)) continue;
        char size[32];
        snprintf(size, sizeof size, "%lld", (long long)st.st_size);
        put(out, first ? "{\"id\":" : ",{\"id\":");
        put_json_string(out, entry->d_name);
        put(out, ",\"name\":");
        put_json_string(out, entry->d_name);
        put(out, ",\"kind\":\"file-disk\",\"size\":");
        put(out, size);
        put(out, "}");
        first = 0;
    }
    closedir(folder);
    return put(out, "]");
}

/* One open snapshot: the file, opened read-only. */
typedef struct example_snapshot {
    int fd;
    uint64_t size;
} example_snapshot;

static dpm_status example_prepare(void *provider, dpm_call *call, const char *request, dpm_buffer *out,
                                  void **handle, char *err, size_t err_size) {
    (void)provider;
    char dir[4096], name[256], path[4400], message[8192];
    dpm_status status = configured_directory(call, dir, sizeof dir, err, err_size);
    if (status != DPM_OK) return status;
    if (!json_string_field(request, "datasource", name, sizeof name) || strchr(name, '/')) {
        dpm_set_error(err, err_size, "the request names no data source (a file name in the folder)");
        return DPM_ERR_INVALID;
    }
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        snprintf(message, sizeof message, "data source %s: cannot open %s: %s; run `dpm datasources list`",
                 name, path, strerror(errno));
        dpm_set_error(err, err_size, message);
        if (fd >= 0) close(fd);
        return errno == ENOENT ? DPM_ERR_NOT_FOUND : DPM_ERR_IO;
    }
    example_snapshot *snapshot = calloc(1, sizeof *snapshot);
    if (!snapshot) {
        close(fd);
        dpm_set_error(err, err_size, "out of memory");
        return DPM_ERR_INTERNAL;
    }
    snapshot->fd = fd;
    snapshot->size = (uint64_t)st.st_size;
    char size[32];
    snprintf(size, sizeof size, "%llu", (unsigned long long)snapshot->size);
    put(out, "{\"datasource\":");
    put_json_string(out, name);
    put(out, ",\"consistency\":\"crash\",\"reason\":\"a file at rest is read as it is\",\"pause_ms\":0,"
             "\"streams\":[{\"name\":\"data\",\"kind\":\"block\",\"size\":");
    put(out, size);
    put(out, "}]}");
    *handle = snapshot;
    return DPM_OK;
}

/* Reports data where the file has data and zeros over its holes (SEEK_DATA/SEEK_HOLE). */
static dpm_status example_extents(void *provider, void *handle, dpm_call *call, uint32_t stream, dpm_buffer *out,
                                  char *err, size_t err_size) {
    (void)provider; (void)call; (void)err; (void)err_size;
    example_snapshot *snapshot = handle;
    if (stream != 0) return DPM_ERR_INVALID;
    off_t position = 0;
    off_t size = (off_t)snapshot->size;
    while (position < size) {
        off_t data = lseek(snapshot->fd, position, SEEK_DATA);
        if (data < 0) data = size; /* ENXIO: only a hole remains */
        if (data > position) {
            dpm_extent hole = {(uint64_t)position, (uint64_t)(data - position), DPM_EXTENT_ZERO, 0};
            g_host->buffer_append(out, &hole, sizeof hole);
        }
        if (data >= size) break;
        off_t end = lseek(snapshot->fd, data, SEEK_HOLE);
        if (end < 0 || end > size) end = size;
        dpm_extent extent = {(uint64_t)data, (uint64_t)(end - data), DPM_EXTENT_DATA, 0};
        g_host->buffer_append(out, &extent, sizeof extent);
        position = end;
    }
    return DPM_OK;
}

static dpm_status example_read(void *provider, void *handle, uint32_t stream, uint64_t offset, void *dst, size_t len,
                               char *err, size_t err_size) {
    (void)provider;
    example_snapshot *snapshot = handle;
    if (stream != 0 || offset > snapshot->size || len > snapshot->size - offset) {
        dpm_set_error(err, err_size, "read past the end of the file");
        return DPM_ERR_INVALID;
    }
    size_t done = 0;
    while (done < len) {
        ssize_t n = pread(snapshot->fd, (char *)dst + done, len - done, (off_t)(offset + done));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            dpm_set_error(err, err_size, n == 0 ? "the file shrank during the backup" : strerror(errno));
            return DPM_ERR_IO;
        }
        done += (size_t)n;
    }
    return DPM_OK;
}

static dpm_status example_finish(void *provider, void *handle, dpm_call *call, int32_t committed, dpm_buffer *out,
                                 char *err, size_t err_size) {
    (void)provider; (void)call; (void)committed; (void)err; (void)err_size;
    example_snapshot *snapshot = handle;
    close(snapshot->fd);
    free(snapshot);
    return put(out, "{}");
}

/* ---- the plugin's tables ------------------------------------------------------------------ */

static dpm_status example_describe(uint32_t index, dpm_provider_info *info, char *err, size_t err_size) {
    if (index != 0 || info->size < DPM_PROVIDER_INFO_MIN_SIZE) {
        dpm_set_error(err, err_size, "no such provider");
        return DPM_ERR_INVALID;
    }
    info->kind = DPM_KIND_WORKLOAD;
    info->id = EXAMPLE_PROVIDER_ID;
    info->display_name = "Files of one folder, protected as disks at rest (C example)";
    info->version = "1.0.0";
    info->capabilities = DPM_CAP_OFFLINE_BACKUP | DPM_CAP_BLOCK_STREAMS;
    info->max_retention_days = 0;
    info->status = DPM_PROVIDER_READY;
    info->status_message = "";
    info->provider = NULL;
    if (info->size > sizeof *info) info->size = sizeof *info;
    return DPM_OK;
}

static dpm_status example_workload_ops(uint32_t index, dpm_workload_ops *ops, char *err, size_t err_size) {
    if (index != 0 || ops->size < DPM_WORKLOAD_OPS_MIN_SIZE) {
        dpm_set_error(err, err_size, "no such workload provider");
        return DPM_ERR_INVALID;
    }
    ops->abi_version = DPM_ABI_VERSION;
    ops->enumerate = example_enumerate;
    ops->snapshot_prepare = example_prepare;
    ops->snapshot_extents = example_extents;
    ops->snapshot_read = example_read;
    ops->snapshot_finish = example_finish;
    /* snapshot_changes, restore, browse, extract and command stay NULL: not supported. */
    if (ops->size > sizeof *ops) ops->size = sizeof *ops;
    return DPM_OK;
}

static dpm_status example_tier_ops(uint32_t index, dpm_tier_ops *ops, char *err, size_t err_size) {
    (void)index; (void)ops;
    dpm_set_error(err, err_size, "this plugin has no tier provider");
    return DPM_ERR_INVALID;
}

DPM_PLUGIN_ENTRY(host, plugin, err, err_size) {
    if (!host || host->size < sizeof(uint32_t) * 2 ||
        DPM_ABI_VERSION_MAJOR_OF(host->abi_version) != DPM_ABI_MAJOR) {
        dpm_set_error(err, err_size, "this plugin needs dpm ABI 1.x");
        return DPM_ERR_ABI;
    }
    g_host = host;
    if (plugin->size > sizeof *plugin) plugin->size = sizeof *plugin;
    plugin->abi_version = DPM_ABI_VERSION;
    plugin->plugin_name = "ExampleFiles";
    plugin->plugin_version = "1.0.0";
    plugin->swift_toolchain = NULL; /* plain C: no Swift runtime */
    plugin->provider_count = 1;
    plugin->describe = example_describe;
    plugin->workload_ops = example_workload_ops;
    plugin->tier_ops = example_tier_ops;
    return DPM_OK;
}
