/*
 * Deliberately broken plugins for the loader's refusal tests. Compile with exactly one of
 * -DBAD_NO_ENTRY, -DBAD_ABI_MAJOR, -DBAD_SMALL_TABLE, -DBAD_SWIFT_STAMP, -DBAD_ENTRY_FAILS.
 */
#include "dpm_plugin.h"

#ifndef BAD_NO_ENTRY

static dpm_status describe(uint32_t index, dpm_provider_info *info, char *err, size_t err_size) {
    (void)index; (void)err; (void)err_size;
    info->kind = DPM_KIND_WORKLOAD;
    info->id = "bad-plugin";
    info->display_name = "bad";
    info->version = "0";
    info->provider = 0;
    return DPM_OK;
}

#endif

#ifdef BAD_NO_ENTRY
DPM_EXTERN_C DPM_EXPORT int not_the_entry(void) { return 0; }
#else
DPM_PLUGIN_ENTRY(host, plugin, err, err_size) {
    (void)host;
    plugin->abi_version = DPM_ABI_VERSION;
    plugin->plugin_name = "Bad";
    plugin->plugin_version = "0";
    plugin->provider_count = 1;
    plugin->describe = describe;
#if defined(BAD_ABI_MAJOR)
    plugin->abi_version = (2u << 16) | 0u;
#elif defined(BAD_SMALL_TABLE)
    plugin->size = 16;
#elif defined(BAD_SWIFT_STAMP)
    plugin->swift_toolchain = "swift-5.9; clang 15.0.0 (elsewhere)";
#elif defined(BAD_ENTRY_FAILS)
    dpm_set_error(err, err_size, "licence file /etc/bad.lic is missing; install it");
    return DPM_ERR_INVALID;
#endif
    (void)err; (void)err_size;
    return DPM_OK;
}
#endif
