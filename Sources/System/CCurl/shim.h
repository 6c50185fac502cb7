/* libcurl (Debian: libcurl4-openssl-dev) for the OnlineTier plugin's S3 transport.
 *
 * curl_easy_setopt and curl_easy_getinfo are variadic, which Swift cannot call; these
 * typed wrappers are the only way the plugin reaches them. Each returns the CURLcode. */
#ifndef DPM_CCURL_SHIM_H
#define DPM_CCURL_SHIM_H

#include <curl/curl.h>

typedef size_t (*dpm_curl_data_callback)(char *buffer, size_t size, size_t count, void *context);
typedef int (*dpm_curl_progress_callback)(void *context, curl_off_t download_total, curl_off_t downloaded,
                                          curl_off_t upload_total, curl_off_t uploaded);

static inline CURLcode dpm_curl_set_long(CURL *handle, CURLoption option, long value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode dpm_curl_set_offset(CURL *handle, CURLoption option, curl_off_t value) {
    return curl_easy_setopt(handle, option, value);
}

/* Strings are copied by libcurl (since 7.17), so the caller's buffer may go away. */
static inline CURLcode dpm_curl_set_string(CURL *handle, CURLoption option, const char *value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode dpm_curl_set_pointer(CURL *handle, CURLoption option, void *value) {
    return curl_easy_setopt(handle, option, value);
}

/* The slist must stay alive until the transfer ends; libcurl does not copy it. */
static inline CURLcode dpm_curl_set_list(CURL *handle, CURLoption option, struct curl_slist *list) {
    return curl_easy_setopt(handle, option, list);
}

/* CURLOPT_WRITEFUNCTION, CURLOPT_READFUNCTION or CURLOPT_HEADERFUNCTION. */
static inline CURLcode dpm_curl_set_data_callback(CURL *handle, CURLoption option, dpm_curl_data_callback callback) {
    return curl_easy_setopt(handle, option, callback);
}

static inline CURLcode dpm_curl_set_progress_callback(CURL *handle, dpm_curl_progress_callback callback) {
    return curl_easy_setopt(handle, CURLOPT_XFERINFOFUNCTION, callback);
}

static inline CURLcode dpm_curl_get_long(CURL *handle, CURLINFO info, long *value) {
    return curl_easy_getinfo(handle, info, value);
}

static inline CURLcode dpm_curl_get_offset(CURL *handle, CURLINFO info, curl_off_t *value) {
    return curl_easy_getinfo(handle, info, value);
}

/* CURL_READFUNC_ABORT, which Swift does not import (a macro with a cast). */
static const size_t dpm_curl_read_abort = CURL_READFUNC_ABORT;

#endif
