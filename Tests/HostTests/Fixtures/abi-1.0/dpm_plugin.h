/*
 * dpm_plugin.h: the stable C ABI between the dpm host and its plugins.
 *
 * This header is the whole contract. A plugin written in C needs nothing else:
 *
 *     cc -shared -fPIC -fvisibility=hidden -I PATH/TO/include my_plugin.c -o libMyPlugin.so
 *
 * and is found by dpm in a plugin directory (beside the `dpm` binary, then every folder of
 * DPM_PLUGIN_PATH, then the `plugin_dirs` setting of the data directory's config.json).
 * examples/c-plugin/example_plugin.c in the dpm repository is a complete, tested example.
 *
 * ----------------------------------------------------------------------------------------
 * 1. Loading and versioning
 * ----------------------------------------------------------------------------------------
 * The host dlopen()s the library with RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE and never
 * unloads it. It looks up exactly one symbol, `dpm_plugin_entry` (declare it with
 * DPM_PLUGIN_ENTRY below so that it is exported even with -fvisibility=hidden), and calls it
 * once:
 *
 *     dpm_status dpm_plugin_entry(const dpm_host_api *host, dpm_plugin_api *plugin,
 *                                 char *err, size_t err_size);
 *
 * - `host` is the host's function table. It stays valid for the life of the process. Keep
 *   the pointer; never copy the struct (it may be larger than the one you were compiled with).
 * - `plugin` is allocated and zero-filled by the host; plugin->size holds the number of
 *   bytes the host allocated. Fill in the fields, then set plugin->size to the number of
 *   bytes *you* filled in (sizeof(dpm_plugin_api) as you compiled it, or plugin->size if
 *   that is smaller) and plugin->abi_version to DPM_ABI_VERSION.
 * - On failure return a status other than DPM_OK and write a one-line reason into `err`.
 *
 * Every table and shared struct begins with `uint32_t size`. Tables only ever grow at their
 * end, so a host reads only the fields that lie inside the size the other side reported,
 * and treats a missing (or NULL) function as "not supported". The host allocates every
 * shared struct and passes its size: a plugin never allocates a struct for the host.
 *
 * DPM_ABI_VERSION is (major << 16) | minor. The host refuses a plugin whose major version
 * differs from its own. A newer minor version only adds fields at the end of tables.
 *
 * Plugins written in Swift also set `swift_toolchain` to the stamp the Swift layer builds
 * (PluginAPI's `SwiftToolchain.stamp`), and the host refuses a stamp that differs from its own: Swift's runtime libraries carry no
 * version in their names, so a plugin built by another toolchain would otherwise run
 * silently against this process's runtime. C plugins leave it NULL.
 *
 * ----------------------------------------------------------------------------------------
 * 2. Calls, statuses, errors and strings
 * ----------------------------------------------------------------------------------------
 * - Every call returns a dpm_status. DPM_OK is 0; everything else is an error.
 * - Error text goes into a caller-owned buffer (`err`, `err_size`): write at most
 *   err_size - 1 bytes plus a NUL (use dpm_set_error below). Name the object and the fix,
 *   for example "disk /vm/a.vhdx: both headers are damaged; restore it from a recovery point".
 * - The host copies every string a plugin hands over before the call returns, except the
 *   strings of dpm_plugin_api and dpm_provider_info, which must stay valid for the life of
 *   the process (string literals are ideal).
 * - Strings are UTF-8 and NUL-terminated. Structured requests and replies are UTF-8 JSON
 *   documents; their fields are listed with each call. Unknown fields must be ignored.
 * - Variable-length output goes into a host-owned dpm_buffer through host->buffer_append.
 * - A plugin must never let a C++ exception, a Swift error or a longjmp cross this boundary.
 *   The host runs each backup job in a worker process, so a crash fails only that job.
 * - Calls for one provider may come from several threads, but never two calls on the same
 *   snapshot, reader or writer handle at once.
 *
 * ----------------------------------------------------------------------------------------
 * 3. Providers
 * ----------------------------------------------------------------------------------------
 * A plugin offers one or more providers. plugin->describe(i, info) fills a host-allocated
 * dpm_provider_info for provider i (0 <= i < provider_count). Provider ids are unique across
 * all plugins; the host refuses a second plugin that registers an id already loaded.
 *
 * - Workload providers (DPM_KIND_WORKLOAD) protect data: host-level VMs, guest applications.
 *   plugin->workload_ops(i, ops) fills a dpm_workload_ops table.
 * - Tier providers (DPM_KIND_TIER) keep self-describing archives of recovery points for the
 *   long term: tape, S3-compatible object storage. plugin->tier_ops(i, ops) fills a
 *   dpm_tier_ops table.
 *
 * A provider whose work is not built yet sets status = DPM_PROVIDER_PLANNED with a one-line
 * status_message saying what is missing, and returns DPM_ERR_PLANNED from every call.
 */
#ifndef DPM_PLUGIN_H
#define DPM_PLUGIN_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------
 * Versions and the entry symbol
 * ------------------------------------------------------------------------------------- */
#define DPM_ABI_MAJOR 1
#define DPM_ABI_MINOR 0
#define DPM_ABI_VERSION ((uint32_t)((DPM_ABI_MAJOR << 16) | DPM_ABI_MINOR))
#define DPM_ABI_VERSION_MAJOR_OF(v) ((uint32_t)(v) >> 16)

/* The name the host looks up with dlsym. */
#define DPM_PLUGIN_ENTRY_SYMBOL "dpm_plugin_entry"

#if defined(__GNUC__) || defined(__clang__)
#define DPM_EXPORT __attribute__((visibility("default")))
#else
#define DPM_EXPORT
#endif

#ifdef __cplusplus
#define DPM_EXTERN_C extern "C"
#else
#define DPM_EXTERN_C
#endif

/* Declares the entry point with the right linkage and visibility:
 *     DPM_PLUGIN_ENTRY(host, plugin, err, err_size) { ... return DPM_OK; }            */
#define DPM_PLUGIN_ENTRY(host, plugin, err, err_size)                                     \
    DPM_EXTERN_C DPM_EXPORT dpm_status dpm_plugin_entry(const dpm_host_api *host,        \
                                                        dpm_plugin_api *plugin,          \
                                                        char *err, size_t err_size)

/* ---------------------------------------------------------------------------------------
 * Status codes: one enum for every call
 * ------------------------------------------------------------------------------------- */
typedef int32_t dpm_status;
enum {
    DPM_OK = 0,
    DPM_ERR_TRANSIENT = 1,   /* may succeed if retried later: device busy, network timeout */
    DPM_ERR_NOT_FOUND = 2,   /* the named data source, item, archive or token does not exist */
    DPM_ERR_UNSUPPORTED = 3, /* the provider cannot do this (see its capabilities) */
    DPM_ERR_CORRUPT = 4,     /* data on disk, on tape or on the network is damaged */
    DPM_ERR_CANCELLED = 5,   /* host->cancelled() said stop */
    DPM_ERR_ABI = 6,         /* version or table-size mismatch */
    DPM_ERR_INVALID = 7,     /* a bad request, argument or configuration; the user must fix it */
    DPM_ERR_IO = 8,          /* an operating-system I/O error */
    DPM_ERR_PLANNED = 9,     /* this provider's work is not built yet */
    DPM_ERR_NO_SPACE = 10,   /* out of space: disk, scratch area, end of tape */
    DPM_ERR_INTERNAL = 11    /* a bug: an invariant broke inside the plugin or the host */
};

/* ---------------------------------------------------------------------------------------
 * Opaque host objects
 * ------------------------------------------------------------------------------------- */
/* One host call in progress. Pass it back to the host callbacks that take one. Valid only
 * until the provider call that received it returns. */
typedef struct dpm_call dpm_call;
/* A growable byte buffer owned by the host; append with host->buffer_append. */
typedef struct dpm_buffer dpm_buffer;

/* ---------------------------------------------------------------------------------------
 * Extents: packed records in buffers (little-endian host order, 24 bytes each)
 * ------------------------------------------------------------------------------------- */
enum {
    DPM_EXTENT_DATA = 0,     /* allocated; read it */
    DPM_EXTENT_ZERO = 1,     /* known to read as zeros; the host stores nothing */
    DPM_EXTENT_EXCLUDED = 2  /* deliberately skipped (page file, swap); restored as zeros */
};

typedef struct dpm_extent {
    uint64_t offset;
    uint64_t length;
    uint32_t flags; /* DPM_EXTENT_* */
    uint32_t reserved;
} dpm_extent;

/* ---------------------------------------------------------------------------------------
 * The host's function table (filled by the host, read by the plugin)
 * ------------------------------------------------------------------------------------- */
enum { DPM_LOG_DEBUG = 0, DPM_LOG_INFO = 1, DPM_LOG_WARNING = 2, DPM_LOG_ERROR = 3 };

typedef struct dpm_host_api {
    uint32_t size;        /* bytes in this table as the host compiled it */
    uint32_t abi_version; /* the host's DPM_ABI_VERSION */

    /* Writes one log line. `call` may be NULL (for example inside dpm_plugin_entry). */
    void (*log)(dpm_call *call, int32_t level, const char *message);

    /* Reports progress of long work: `done` out of `total` units (bytes, usually).
     * total == 0 means unknown. Cheap; call it as often as you like. */
    void (*progress)(dpm_call *call, uint64_t done, uint64_t total);

    /* Returns nonzero when the user or the scheduler cancelled this call. Long work checks
     * it regularly and then returns DPM_ERR_CANCELLED. */
    int32_t (*cancelled)(dpm_call *call);

    /* Looks up a configuration value for the calling provider. Keys the host always knows:
     *   "state_dir"  a directory that belongs to this provider, for its own files
     *   "data_dir"   the dpm data directory (read-only for plugins)
     *   "test_mode"  "1" when dpm runs its own tests
     * plus every key set with `dpm config set PROVIDER_ID.KEY VALUE`.
     * Copies the value with a NUL into `value` (truncating at value_size - 1), sets
     * *value_len to its full length, and returns DPM_ERR_NOT_FOUND for an unknown key. */
    dpm_status (*config_get)(dpm_call *call, const char *key, char *value, size_t value_size,
                             size_t *value_len);

    /* Appends `len` bytes to a host buffer. Fails only when memory runs out. */
    dpm_status (*buffer_append)(dpm_buffer *buffer, const void *data, size_t len);

    /* --- Random access to a recovery point -------------------------------------------
     * Valid only in calls that work on a recovery point (restore, browse, extract); other
     * calls get DPM_ERR_INVALID. The host reads only the chunks a request touches, so a
     * provider can browse a filesystem inside a VM disk without the host understanding it.
     */

    /* Copies the recovery point's manifest, as JSON with a NUL, into the caller-owned
     * `out` and sets *out_len to its full length. When *out_len >= out_size the copy was
     * truncated: call again with a buffer of *out_len + 1 bytes. The manifest is
     *   {"datasource":"…","rp":"…","time":"ISO-8601","kind":"full|incremental|express-full",
     *    "consistency":"…","metadata":{…provider's own snapshot metadata…},
     *    "streams":[{"index":0,"name":"…","kind":"block|file","size":N}, …]}            */
    dpm_status (*rp_manifest)(dpm_call *call, char *out, size_t out_size, size_t *out_len,
                              char *err, size_t err_size);

    /* Reads `len` bytes of stream `stream` at `offset` into `dst`. Reads past the end of
     * the stream fail with DPM_ERR_INVALID. */
    dpm_status (*rp_read)(dpm_call *call, uint32_t stream, uint64_t offset, void *dst,
                          size_t len, char *err, size_t err_size);

    /* Copies the extents of `stream` that hold data, in ascending offset order, into the
     * caller-owned array `out` of `max_count` records and sets *count to the total number.
     * When *count > max_count, call again with a larger array. Ranges not listed read as
     * zeros. */
    dpm_status (*rp_map)(dpm_call *call, uint32_t stream, dpm_extent *out, size_t max_count,
                         size_t *count, char *err, size_t err_size);
} dpm_host_api;

/* ---------------------------------------------------------------------------------------
 * Provider description
 * ------------------------------------------------------------------------------------- */
enum { DPM_KIND_WORKLOAD = 1, DPM_KIND_TIER = 2 };
enum { DPM_PROVIDER_READY = 0, DPM_PROVIDER_PLANNED = 1 };

/* Capability flags. A host never asks a provider for something it does not claim. */
#define DPM_CAP_ONLINE_BACKUP       (1ull << 0)  /* consistent backup while running (quiesced) */
#define DPM_CAP_OFFLINE_BACKUP      (1ull << 1)  /* backup paused or at rest */
#define DPM_CAP_CHANGE_TRACKING     (1ull << 2)  /* snapshot_changes can answer */
#define DPM_CAP_ITEM_RECOVERY       (1ull << 3)  /* browse / extract files inside a point */
#define DPM_CAP_APPLICATION_ITEMS   (1ull << 4)  /* recovery in application terms (a database) */
#define DPM_CAP_LONG_TERM_RETENTION (1ull << 5)  /* tier keeps archives for max_retention_days */
#define DPM_CAP_BLOCK_STREAMS       (1ull << 6)  /* streams are block devices (fixed chunks) */
#define DPM_CAP_FILE_STREAMS        (1ull << 7)  /* streams are byte streams (content-defined) */
#define DPM_CAP_RESTORE_ORIGINAL    (1ull << 8)  /* can replace the protected object in place */
#define DPM_CAP_RESTORE_ALTERNATE   (1ull << 9)  /* can restore to another location */
#define DPM_CAP_EXPRESS_FULL        (1ull << 10) /* consistent snapshot that moves only changes */

typedef struct dpm_provider_info {
    uint32_t size;               /* set by the host: bytes allocated; plugin sets bytes filled */
    uint32_t kind;               /* DPM_KIND_* */
    const char *id;              /* unique, lower-case, e.g. "hyperv-host"; static storage */
    const char *display_name;    /* e.g. "Hyper-V host-level VM protection" */
    const char *version;         /* the provider's own version, e.g. "0.3.0" */
    uint64_t capabilities;       /* DPM_CAP_* */
    uint32_t max_retention_days; /* tier providers: the longest retention they keep; else 0 */
    uint32_t status;             /* DPM_PROVIDER_READY or DPM_PROVIDER_PLANNED */
    const char *status_message;  /* one line; for PLANNED, what is missing */
    void *provider;              /* passed back as the first argument of every op */
} dpm_provider_info;

/* ---------------------------------------------------------------------------------------
 * Workload providers
 * ------------------------------------------------------------------------------------- */
typedef struct dpm_workload_ops {
    uint32_t size;        /* set by the host: bytes allocated; plugin sets bytes filled */
    uint32_t abi_version; /* plugin sets DPM_ABI_VERSION */

    /* Appends a JSON array of data sources:
     *   [{"id":"…stable id…","name":"…","kind":"vm|database|…","size":N,"details":{…}}, …] */
    dpm_status (*enumerate)(void *provider, dpm_call *call, dpm_buffer *out_json, char *err,
                            size_t err_size);

    /* Prepares a consistent snapshot of one data source.
     * request_json: {"datasource":"…id or name…","mode":"full|incremental|express-full",
     *                "previous_token":"…or absent…","options":{…}}
     * Appends to out_json:
     *   {"datasource":"…id…","consistency":"application|filesystem|crash",
     *    "reason":"why this level","pause_ms":N,
     *    "streams":[{"name":"…","kind":"block|file","size":N}, …],
     *    "metadata":{…kept with the recovery point, handed back on restore…}}
     * and stores an opaque handle in *snapshot. After DPM_OK the host always calls
     * snapshot_finish exactly once, whatever happens in between. */
    dpm_status (*snapshot_prepare)(void *provider, dpm_call *call, const char *request_json,
                                   dpm_buffer *out_json, void **snapshot, char *err,
                                   size_t err_size);

    /* Appends the extents of `stream` as dpm_extent records covering [0, size) in order:
     * DATA where the host must read, ZERO where nothing is allocated, EXCLUDED where the
     * provider chose to skip (page files). */
    dpm_status (*snapshot_extents)(void *provider, void *snapshot, dpm_call *call,
                                   uint32_t stream, dpm_buffer *out_extents, char *err,
                                   size_t err_size);

    /* Appends the ranges of `stream` that may have changed since `since_token` (a token a
     * previous snapshot_finish returned), as dpm_extent records. Returns DPM_ERR_NOT_FOUND
     * when the provider cannot vouch for the changes (bitmap lost, token unknown): the host
     * then hashes every allocated block instead. Never returns a partial answer. */
    dpm_status (*snapshot_changes)(void *provider, void *snapshot, dpm_call *call,
                                   uint32_t stream, const char *since_token,
                                   dpm_buffer *out_extents, char *err, size_t err_size);

    /* Reads exactly `len` bytes of `stream` at `offset` into `dst`. */
    dpm_status (*snapshot_read)(void *provider, void *snapshot, uint32_t stream,
                                uint64_t offset, void *dst, size_t len, char *err,
                                size_t err_size);

    /* Releases the snapshot (thaw, resume, drop overlays). committed is 1 when the host
     * stored the recovery point. Appends {"token":"…change-tracking token…"} (or {}).
     * The handle is invalid afterwards, whatever the status. */
    dpm_status (*snapshot_finish)(void *provider, void *snapshot, dpm_call *call,
                                  int32_t committed, dpm_buffer *out_json, char *err,
                                  size_t err_size);

    /* Restores the recovery point bound to `call` (read it with host->rp_*).
     * request_json: {"datasource":"…","target":"original|alternate|copy-disks",
     *                "directory":"…","format":"…","options":{…}}
     * Appends a JSON summary: {"written":[{"path":"…","bytes":N}, …], …}. */
    dpm_status (*restore)(void *provider, dpm_call *call, const char *request_json,
                          dpm_buffer *out_json, char *err, size_t err_size);

    /* Lists items inside the recovery point bound to `call`.
     * request_json: {"path":"/…"}; appends {"entries":[{"name","type","size","mtime"},…]} */
    dpm_status (*browse)(void *provider, dpm_call *call, const char *request_json,
                         dpm_buffer *out_json, char *err, size_t err_size);

    /* Copies items out of the recovery point bound to `call` into a folder.
     * request_json: {"items":["/…", …],"directory":"…"}; appends a JSON summary. */
    dpm_status (*extract)(void *provider, dpm_call *call, const char *request_json,
                          dpm_buffer *out_json, char *err, size_t err_size);

    /* Provider-specific administration (for HyperVHost: the VM inventory).
     * request_json: {"verb":"…","args":{…}}; appends a JSON reply. Unknown verbs get
     * DPM_ERR_UNSUPPORTED. */
    dpm_status (*command)(void *provider, dpm_call *call, const char *request_json,
                          dpm_buffer *out_json, char *err, size_t err_size);
} dpm_workload_ops;

/* ---------------------------------------------------------------------------------------
 * Tier providers
 * ------------------------------------------------------------------------------------- */
typedef struct dpm_tier_ops {
    uint32_t size;        /* set by the host: bytes allocated; plugin sets bytes filled */
    uint32_t abi_version; /* plugin sets DPM_ABI_VERSION */

    /* Begins storing one archive, a self-describing byte stream the host produces: a
     * POSIX pax archive of one recovery point (its manifest, its index and every chunk it
     * needs), so a tier may parse its 512-byte headers, e.g. to span tapes the way GNU
     * tar -M does. read() later returns exactly the bytes store_write received.
     * request_json: {"name":"…unique…","datasource":"…","rp":"…","time":"…",
     *                "retention_days":N,"size":N or absent,
     *                optional policy hints a tier may ignore:
     *                "expires":"…","datasource_name":"…","group":"…","pool":"…",
     *                "library":"…","drives":[N,…],"colocate":bool,"frequency":"weekly",
     *                "encryption":{"key_fingerprint":"hex",…} or absent (keep it with
     *                the archive; never mix archives of different fingerprints, or
     *                encrypted with unencrypted ones, on one medium),
     *                "summary":{…host's description, kept and handed back…}}
     * Stores an opaque handle in *writer. A tier that must wait for a medium waits a
     * bounded time, then fails with DPM_ERR_NO_SPACE naming the pool and the fix. */
    dpm_status (*store_begin)(void *provider, dpm_call *call, const char *request_json,
                              void **writer, char *err, size_t err_size);
    dpm_status (*store_write)(void *provider, void *writer, const void *data, size_t len,
                              char *err, size_t err_size);
    /* commit = 1 makes the archive durable and listed; 0 discards it. Appends
     * {"name":"…","location":"…tape barcode or object key…","bytes":N,
     *  "volumes":[{"medium":"…","file":N,"bytes":N,"sequence":N},…] (optional),
     *  plus "datasource_name", "encryption" and "summary" as the request gave them}.
     * The handle is invalid afterwards, whatever the status. */
    dpm_status (*store_finish)(void *provider, void *writer, dpm_call *call, int32_t commit,
                               dpm_buffer *out_json, char *err, size_t err_size);

    /* Appends {"archives":[{"name","datasource","rp","time","expires","bytes","location"},…]}.
     * request_json may filter: {"datasource":"…"}. */
    dpm_status (*list)(void *provider, dpm_call *call, const char *request_json,
                       dpm_buffer *out_json, char *err, size_t err_size);

    /* Opens an archive for reading: request_json {"name":"…"}; appends its description. */
    dpm_status (*read_begin)(void *provider, dpm_call *call, const char *request_json,
                             void **reader, dpm_buffer *out_json, char *err, size_t err_size);
    /* Reads up to `len` bytes; *out_len == 0 means the end of the archive. */
    dpm_status (*read)(void *provider, void *reader, void *dst, size_t len, size_t *out_len,
                       char *err, size_t err_size);
    dpm_status (*read_end)(void *provider, void *reader);

    /* Removes archives whose retention has passed. request_json: {"now":"ISO-8601"}.
     * Appends {"expired":["name", …]}. */
    dpm_status (*expire)(void *provider, dpm_call *call, const char *request_json,
                         dpm_buffer *out_json, char *err, size_t err_size);

    /* Provider-specific administration (tapes, slots, buckets), as for workloads. */
    dpm_status (*command)(void *provider, dpm_call *call, const char *request_json,
                          dpm_buffer *out_json, char *err, size_t err_size);
} dpm_tier_ops;

/* ---------------------------------------------------------------------------------------
 * The plugin's table (allocated by the host, filled by the plugin in dpm_plugin_entry)
 * ------------------------------------------------------------------------------------- */
typedef struct dpm_plugin_api {
    uint32_t size;               /* host: bytes allocated; plugin: bytes filled */
    uint32_t abi_version;        /* plugin: DPM_ABI_VERSION */
    const char *plugin_name;     /* e.g. "HyperVHost"; static storage */
    const char *plugin_version;  /* e.g. "0.3.0"; static storage */
    const char *swift_toolchain; /* Swift plugins: SwiftToolchain.stamp; C plugins: NULL */
    uint32_t provider_count;
    uint32_t reserved;

    /* Fills info for provider `index`. */
    dpm_status (*describe)(uint32_t index, dpm_provider_info *info, char *err, size_t err_size);
    /* Fills the op table of a workload provider; DPM_ERR_INVALID for a tier provider. */
    dpm_status (*workload_ops)(uint32_t index, dpm_workload_ops *ops, char *err,
                               size_t err_size);
    /* Fills the op table of a tier provider; DPM_ERR_INVALID for a workload provider. */
    dpm_status (*tier_ops)(uint32_t index, dpm_tier_ops *ops, char *err, size_t err_size);
} dpm_plugin_api;

/* The smallest tables a host of this major version accepts: the fields of ABI 1.0. */
#define DPM_PLUGIN_API_MIN_SIZE ((uint32_t)(offsetof(dpm_plugin_api, tier_ops) + sizeof(void *)))
#define DPM_PROVIDER_INFO_MIN_SIZE ((uint32_t)(offsetof(dpm_provider_info, provider) + sizeof(void *)))
#define DPM_WORKLOAD_OPS_MIN_SIZE ((uint32_t)(offsetof(dpm_workload_ops, command) + sizeof(void *)))
#define DPM_TIER_OPS_MIN_SIZE ((uint32_t)(offsetof(dpm_tier_ops, command) + sizeof(void *)))

/* ---------------------------------------------------------------------------------------
 * Small helpers (static inline: the header stays the only thing a plugin needs)
 * ------------------------------------------------------------------------------------- */

/* Copies `message` into a caller-owned error buffer, truncating safely. */
static inline void dpm_set_error(char *err, size_t err_size, const char *message) {
    if (err == NULL || err_size == 0) return;
    size_t n = message ? strlen(message) : 0;
    if (n >= err_size) n = err_size - 1;
    if (n) memcpy(err, message, n);
    err[n] = '\0';
}

/* The stable name of a status, for logs. */
static inline const char *dpm_status_name(dpm_status status) {
    switch (status) {
    case DPM_OK: return "ok";
    case DPM_ERR_TRANSIENT: return "transient";
    case DPM_ERR_NOT_FOUND: return "not-found";
    case DPM_ERR_UNSUPPORTED: return "unsupported";
    case DPM_ERR_CORRUPT: return "corrupt";
    case DPM_ERR_CANCELLED: return "cancelled";
    case DPM_ERR_ABI: return "abi-mismatch";
    case DPM_ERR_INVALID: return "invalid";
    case DPM_ERR_IO: return "io";
    case DPM_ERR_PLANNED: return "planned";
    case DPM_ERR_NO_SPACE: return "no-space";
    case DPM_ERR_INTERNAL: return "internal";
    default: return "unknown";
    }
}

/* The compiler half of the Swift toolchain stamp: the version of the clang that is built
 * into the Swift toolchain (it names the exact llvm-project commit). The Swift layer
 * (PluginAPI) adds the Swift language version. Meaningful only when compiled by the Swift
 * toolchain's own clang importer; C plugins do not need it. */
static inline const char *dpm_toolchain_clang_version(void) {
#ifdef __clang_version__
    return __clang_version__;
#else
    return "not-clang";
#endif
}

#ifdef __cplusplus
}
#endif

#endif /* DPM_PLUGIN_H */
