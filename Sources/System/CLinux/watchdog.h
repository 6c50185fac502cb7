/* A watchdog process that sends a few JSON lines to a unix socket when its parent dies or
 * a deadline passes: it thaws a frozen guest (guest-fsfreeze-thaw to the guest agent) or
 * resumes a paused VM (cont to QMP) if the backup that froze or paused it is killed, even
 * by SIGKILL, or hangs.
 *
 * Why C: the child of fork() in a multithreaded process may only call async-signal-safe
 * functions; Swift code could take a runtime lock another thread held at fork time. The
 * child below makes system calls only, on memory prepared before fork.
 *
 * Contract:
 * - dpm_watchdog_spawn forks the watchdog and returns its pid (or -1 with errno) and, in
 *   *arm_fd, the parent's end of a close-on-exec socket pair (a socket, not a pipe, so that
 *   writing after the watchdog exited can use MSG_NOSIGNAL instead of raising SIGPIPE).
 * - Writing the byte 'D' to arm_fd disarms it: the child exits at once, doing nothing.
 * - Closing arm_fd without 'D' (the parent gave up, or died: the kernel closes it) or
 *   letting deadline_ms pass fires it: the child connects to `path` and sends each
 *   '\n'-terminated line of `script`, waiting after each for a reply line that contains
 *   "return" or "error" (QMP and guest-agent replies; events and greetings are skipped).
 *   When `first_reply` is not NULL, the first line's reply is instead the first one that
 *   contains `first_reply`: a guest agent's channel may hold stale replies of an earlier
 *   client, so the script starts with 0xFF and guest-sync-delimited, and `first_reply` is
 *   the unique id followed by '}'. It
 *   retries for retry_ms, then exits: 0 delivered, 1 not.
 * - The child leaves the parent's session (Ctrl-C of the backup does not reach it), ignores
 *   SIGINT/SIGTERM/SIGHUP/SIGPIPE, and closes every inherited descriptor, so it holds no
 *   lock file and no QMP or NBD connection of the parent.
 */
#ifndef DPM_CLINUX_WATCHDOG_H
#define DPM_CLINUX_WATCHDOG_H

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static inline long dpm_watchdog_now_ms(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long)now.tv_sec * 1000L + now.tv_nsec / 1000000L;
}

/* Waits for `events` on fd until the monotonic time `until_ms`; 1 ready, 0 timed out, -1 error. */
static inline int dpm_watchdog_wait(int fd, short events, long until_ms) {
    for (;;) {
        long remaining = until_ms - dpm_watchdog_now_ms();
        if (remaining <= 0) return 0;
        struct pollfd entry = { fd, events, 0 };
        int result = poll(&entry, 1, (int)remaining);
        if (result > 0) return 1;
        if (result == 0) return 0;
        if (errno != EINTR) return -1;
    }
}

/* One delivery attempt over a fresh connection; 0 when every line got a reply. */
static inline int dpm_watchdog_deliver(const char *path, const char *script, size_t script_len, const char *first_reply,
                                       int timeout_ms) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return -1;
    struct sockaddr_un address;
    memset(&address, 0, sizeof address);
    address.sun_family = AF_UNIX;
    size_t path_len = strlen(path);
    if (path_len >= sizeof address.sun_path) { close(fd); return -1; }
    memcpy(address.sun_path, path, path_len);
    long until = dpm_watchdog_now_ms() + timeout_ms;
    if (connect(fd, (struct sockaddr *)&address, sizeof address) != 0) {
        if (errno != EINPROGRESS && errno != EAGAIN) { close(fd); return -1; }
        if (dpm_watchdog_wait(fd, POLLOUT, until) != 1) { close(fd); return -1; }
    }
    size_t position = 0;
    size_t marker_len = first_reply ? strlen(first_reply) : 0;
    if (marker_len > 32) { close(fd); return -1; }
    while (position < script_len) {
        const char *marker = position == 0 ? first_reply : NULL;
        const char *newline = memchr(script + position, '\n', script_len - position);
        size_t line_len = newline ? (size_t)(newline - (script + position)) + 1 : script_len - position;
        size_t sent = 0;
        while (sent < line_len) {
            ssize_t written = send(fd, script + position + sent, line_len - sent, MSG_NOSIGNAL);
            if (written > 0) { sent += (size_t)written; continue; }
            if (written < 0 && (errno == EAGAIN || errno == EINTR) && dpm_watchdog_wait(fd, POLLOUT, until) == 1) continue;
            close(fd);
            return -1;
        }
        position += line_len;
        /* Scan replies for "return" or "error" (or the marker); keep the last 32 bytes across
         * reads so a word split between two reads is still found. */
        char window[4096 + 32];
        size_t kept = 0;
        int answered = 0;
        while (!answered) {
            if (dpm_watchdog_wait(fd, POLLIN, until) != 1) { close(fd); return -1; }
            ssize_t got = recv(fd, window + kept, 4096, 0);
            if (got == 0) { close(fd); return -1; }
            if (got < 0) {
                if (errno == EAGAIN || errno == EINTR) continue;
                close(fd);
                return -1;
            }
            size_t total = kept + (size_t)got;
            for (size_t i = 0; i < total && !answered; i++) {
                if (marker) {
                    if (i + marker_len <= total && memcmp(window + i, marker, marker_len) == 0) answered = 1;
                } else if ((i + 7 <= total && memcmp(window + i, "\"return", 7) == 0)
                           || (i + 6 <= total && memcmp(window + i, "\"error", 6) == 0)) {
                    answered = 1;
                }
            }
            kept = total < 32 ? total : 32;
            memmove(window, window + total - kept, kept);
        }
    }
    close(fd);
    return 0;
}

static inline void dpm_watchdog_child(int arm_fd, const char *path, const char *script, size_t script_len,
                                      const char *first_reply, int deadline_ms, int retry_ms) {
    setsid();
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    if (arm_fd != 3) { dup2(arm_fd, 3); }
    int null_fd = open("/dev/null", O_RDWR);
    if (null_fd >= 0) { dup2(null_fd, 0); dup2(null_fd, 1); dup2(null_fd, 2); }
    if (syscall(SYS_close_range, 4U, ~0U, 0) != 0) {
        for (int fd = 4; fd < 65536; fd++) close(fd);
    }
    long until = dpm_watchdog_now_ms() + deadline_ms;
    for (;;) {
        int ready = dpm_watchdog_wait(3, POLLIN, until);
        if (ready != 1) break;                 /* deadline passed (or poll failed): fire */
        char byte = 0;
        ssize_t got = read(3, &byte, 1);
        if (got == 1 && byte == 'D') _exit(0); /* disarmed */
        if (got == 1) continue;                /* anything else: keep waiting */
        if (got < 0 && errno == EINTR) continue;
        break;                                 /* end of file: the parent closed or died */
    }
    long give_up = dpm_watchdog_now_ms() + retry_ms;
    do {
        if (dpm_watchdog_deliver(path, script, script_len, first_reply, 5000) == 0) _exit(0);
        struct timespec pause = { 0, 200 * 1000 * 1000 };
        nanosleep(&pause, NULL);
    } while (dpm_watchdog_now_ms() < give_up);
    _exit(1);
}

/* Forks the watchdog; see the contract at the top of this file. */
static inline int dpm_watchdog_spawn(const char *path, const char *script, size_t script_len, const char *first_reply,
                                     int deadline_ms, int retry_ms, int *arm_fd) {
    int fds[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) return -1;
    pid_t pid = fork();
    if (pid < 0) {
        int saved = errno;
        close(fds[0]);
        close(fds[1]);
        errno = saved;
        return -1;
    }
    if (pid == 0) {
        close(fds[1]);
        dpm_watchdog_child(fds[0], path, script, script_len, first_reply, deadline_ms, retry_ms);
        _exit(1);
    }
    close(fds[0]);
    *arm_fd = fds[1];
    return pid;
}
#endif
