/* Compares the two ways of reading chunk files from storage rather than from the page cache
 * (Sources/Host/Store/StorageRead.swift), on the files of a real store, with THREADS threads:
 *
 *   direct   O_DIRECT into an aligned buffer (what dpm uses where statx says it is real)
 *   dropped  fdatasync, posix_fadvise(DONTNEED), then an ordinary read (dpm's fallback)
 *   cached   an ordinary read of the cached pages (the old read-back, for reference)
 *
 * Before each method every file is read once, so its pages are cached as right after a
 * backup. Prints wall time and the process's user and system CPU time for each method.
 *
 *   cc -O2 -pthread benchmarks/storage_read.c -o /tmp/storage_read
 *   find STORE/chunks -type f > /tmp/chunks.txt && /tmp/storage_read /tmp/chunks.txt 2
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum method { DIRECT, DROPPED, CACHED };

static char **paths;
static int count, next_file, method_in_use;
static long long bytes_read;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static double cpu(int who_system) {
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    struct timeval t = who_system ? usage.ru_stime : usage.ru_utime;
    return t.tv_sec + t.tv_usec / 1e6;
}

static void *worker(void *unused) {
    (void)unused;
    size_t capacity = 16 << 20;
    void *buffer;
    if (posix_memalign(&buffer, 4096, capacity) != 0) return NULL;
    for (;;) {
        pthread_mutex_lock(&lock);
        int index = next_file < count ? next_file++ : -1;
        pthread_mutex_unlock(&lock);
        if (index < 0) break;
        int fd = open(paths[index], O_RDONLY | (method_in_use == DIRECT ? O_DIRECT : 0));
        if (fd < 0) { perror(paths[index]); continue; }
        if (method_in_use == DROPPED) {
            fdatasync(fd);
            posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
        }
        long long total = 0;
        for (;;) {
            ssize_t n = pread(fd, (char *)buffer + total, capacity - total, total);
            if (n <= 0) break;
            total += n;
        }
        close(fd);
        pthread_mutex_lock(&lock);
        bytes_read += total;
        pthread_mutex_unlock(&lock);
    }
    free(buffer);
    return NULL;
}

static void run(enum method method, int threads, const char *name) {
    method_in_use = method;
    next_file = 0;
    bytes_read = 0;
    double wall = now(), user = cpu(0), system = cpu(1);
    pthread_t ids[64];
    for (int i = 0; i < threads; i++) pthread_create(&ids[i], NULL, worker, NULL);
    for (int i = 0; i < threads; i++) pthread_join(ids[i], NULL);
    wall = now() - wall;
    printf("%-8s %6.0f MiB  wall %.3f s  user %.3f s  sys %.3f s  (%.0f MB/s)\n", name, bytes_read / 1048576.0, wall,
           cpu(0) - user, cpu(1) - system, bytes_read / wall / 1e6);
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: storage_read LIST [THREADS]\n"); return 2; }
    int threads = argc > 2 ? atoi(argv[2]) : 2;
    if (threads < 1 || threads > 64) threads = 2;
    FILE *list = fopen(argv[1], "r");
    if (!list) { perror(argv[1]); return 1; }
    char line[4096];
    while (fgets(line, sizeof line, list)) {
        line[strcspn(line, "\n")] = 0;
        paths = realloc(paths, sizeof *paths * (count + 1));
        paths[count++] = strdup(line);
    }
    const char *names[] = {"direct", "dropped", "cached"};
    for (int method = DIRECT; method <= CACHED; method++) {
        run(CACHED, threads, "(warm)");
        run(method, threads, names[method]);
    }
    return 0;
}
