/*
 * Compile-time guards for the ABI's layout on the platforms dpm supports (LP64 Linux).
 * A change that moves a field of ABI 1.x fails the build here instead of breaking plugins
 * built against an earlier header. New fields go at the end of a table, after these.
 */
#include "dpm_plugin.h"

_Static_assert(sizeof(void *) == 8, "dpm's ABI is defined for 64-bit platforms");
_Static_assert(sizeof(dpm_extent) == 24, "dpm_extent is 24 bytes");
_Static_assert(offsetof(dpm_host_api, log) == 8, "dpm_host_api.log");
_Static_assert(offsetof(dpm_host_api, rp_map) == 64, "dpm_host_api.rp_map");
_Static_assert(offsetof(dpm_plugin_api, plugin_name) == 8, "dpm_plugin_api.plugin_name");
_Static_assert(offsetof(dpm_plugin_api, provider_count) == 32, "dpm_plugin_api.provider_count");
_Static_assert(offsetof(dpm_plugin_api, describe) == 40, "dpm_plugin_api.describe");
_Static_assert(DPM_PLUGIN_API_MIN_SIZE == 64, "dpm_plugin_api 1.0 size");
_Static_assert(offsetof(dpm_provider_info, capabilities) == 32, "dpm_provider_info.capabilities");
_Static_assert(DPM_PROVIDER_INFO_MIN_SIZE == 64, "dpm_provider_info 1.0 size");
_Static_assert(DPM_WORKLOAD_OPS_MIN_SIZE == 88, "dpm_workload_ops 1.0 size");
_Static_assert(DPM_TIER_OPS_MIN_SIZE == 80, "dpm_tier_ops 1.0 size");
_Static_assert(offsetof(dpm_tier_ops, object_put) == DPM_TIER_OPS_MIN_SIZE, "dpm_tier_ops 1.1 grows at the end");
_Static_assert(sizeof(dpm_tier_ops) == DPM_TIER_OPS_MIN_SIZE + 5 * sizeof(void *), "dpm_tier_ops 1.1 size");
