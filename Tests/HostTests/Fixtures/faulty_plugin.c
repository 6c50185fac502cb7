/*
 * A workload provider that misbehaves on purpose, for the server's isolation tests: the C
 * example plugin under another id, except that reading data source "trap.img" aborts the
 * process (a trap inside the plugin) and reading "hang.img" never returns.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <unistd.h>

#define EXAMPLE_PROVIDER_ID "faulty-files"
#define dpm_plugin_entry example_entry
#include "../../../examples/c-plugin/example_plugin.c"
#undef dpm_plugin_entry

static const char *g_fault = "";

static dpm_status faulty_prepare(void *provider, dpm_call *call, const char *request, dpm_buffer *out, void **handle,
                                 char *err, size_t err_size) {
    g_fault = strstr(request, "\"trap.img\"") ? "trap" : strstr(request, "\"hang.img\"") ? "hang" : "";
    return example_prepare(provider, call, request, out, handle, err, err_size);
}

static dpm_status faulty_read(void *provider, void *handle, uint32_t stream, uint64_t offset, void *dst, size_t len,
                              char *err, size_t err_size) {
    if (strcmp(g_fault, "trap") == 0) abort();
    if (strcmp(g_fault, "hang") == 0) for (;;) pause();
    return example_read(provider, handle, stream, offset, dst, len, err, err_size);
}

static dpm_status faulty_workload_ops(uint32_t index, dpm_workload_ops *ops, char *err, size_t err_size) {
    dpm_status status = example_workload_ops(index, ops, err, err_size);
    ops->snapshot_prepare = faulty_prepare;
    ops->snapshot_read = faulty_read;
    return status;
}

DPM_PLUGIN_ENTRY(host, plugin, err, err_size) {
    dpm_status status = example_entry(host, plugin, err, err_size);
    plugin->plugin_name = "FaultyFiles";
    plugin->workload_ops = faulty_workload_ops;
    return status;
}
