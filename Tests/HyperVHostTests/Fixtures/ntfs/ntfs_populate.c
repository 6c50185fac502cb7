/*
 * ntfs_populate: fills an NTFS image (made by mkntfs) through libntfs-3g, without mounting it,
 * following a manifest. Used by NTFSTests to build volumes with known content.
 *
 *   ntfs_populate IMAGE MANIFEST
 *
 * The manifest has one operation a line, fields separated by TABs, paths absolute inside the
 * volume ("/a/b"), in UTF-8:
 *
 *   mkdir      PATH                          create a directory
 *   file       PATH  HOSTFILE                create a file with HOSTFILE's bytes (all written)
 *   sparse     PATH  HOSTFILE [BLOCK]        same, but BLOCK-byte blocks (default 64 KiB) that
 *                                            are all zero are not written (holes), then the
 *                                            size is set; 4 KiB blocks alternating with zeros
 *                                            give a runlist long enough to need extension
 *                                            records ($ATTRIBUTE_LIST)
 *   stream     PATH  NAME  HOSTFILE          add a named $DATA stream to an existing file
 *   link       EXISTING  NEWPATH             add a hard link
 *   compress   PATH                          set the compressed flag on a directory: files
 *                                            created in it afterwards are LZNT1-compressed
 *   symlink    PATH  TARGET                  create a file carrying a symbolic-link reparse
 *                                            point (IO_REPARSE_TAG_SYMLINK, relative)
 *   dosname    PATH  SHORT                   give a file an 8.3 name: its name becomes a Win32
 *                                            name paired with a DOS name
 *   times      PATH  CREATE  MODIFY  ACCESS  set $STANDARD_INFORMATION times (decimal, 100 ns
 *                                            units since 1601)
 *
 * Exit status 0 on success; on failure a message on stderr and status 1.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <types.h>
#include <layout.h>
#include <attrib.h>
#include <inode.h>
#include <dir.h>
#include <volume.h>
#include <reparse.h>
#include <xattrs.h>

static ntfs_volume *vol;
static int line_number;

static void die(const char *what, const char *detail) {
    fprintf(stderr, "ntfs_populate: line %d: %s: %s (%s)\n", line_number, what, detail ? detail : "",
            errno ? strerror(errno) : "no errno");
    if (vol) ntfs_umount(vol, TRUE);
    exit(1);
}

/* UTF-8 to UTF-16LE (host order on little-endian machines); returns the unit count. */
static int utf16(const char *text, ntfschar *out, int capacity) {
    const unsigned char *s = (const unsigned char *)text;
    int n = 0;
    while (*s) {
        uint32_t c;
        if (*s < 0x80) c = *s++;
        else if ((*s & 0xe0) == 0xc0) { c = (*s++ & 0x1f) << 6; c |= (*s++ & 0x3f); }
        else if ((*s & 0xf0) == 0xe0) { c = (*s++ & 0x0f) << 12; c |= (*s++ & 0x3f) << 6; c |= (*s++ & 0x3f); }
        else { c = (*s++ & 0x07) << 18; c |= (*s++ & 0x3f) << 12; c |= (*s++ & 0x3f) << 6; c |= (*s++ & 0x3f); }
        if (c >= 0x10000) {
            if (n + 2 > capacity) return -1;
            c -= 0x10000;
            out[n++] = cpu_to_le16(0xd800 | (c >> 10));
            out[n++] = cpu_to_le16(0xdc00 | (c & 0x3ff));
        } else {
            if (n + 1 > capacity) return -1;
            out[n++] = cpu_to_le16(c);
        }
    }
    return n;
}

/* Opens the inode at an absolute path, or NULL. */
static ntfs_inode *open_path(const char *path) {
    ntfs_inode *ni = ntfs_inode_open(vol, FILE_root);
    char copy[4096];
    snprintf(copy, sizeof copy, "%s", path);
    for (char *part = strtok(copy, "/"); part && ni; part = strtok(NULL, "/")) {
        ntfschar name[256];
        int len = utf16(part, name, 255);
        if (len <= 0) die("bad name", part);
        u64 mref = ntfs_inode_lookup_by_name(ni, name, len);
        ntfs_inode_close(ni);
        if (mref == (u64)-1) return NULL;
        ni = ntfs_inode_open(vol, MREF(mref));
    }
    return ni;
}

/* Splits "/a/b/c" into the parent's inode (opened) and the last name. */
static ntfs_inode *open_parent(const char *path, ntfschar *name, int *len) {
    char parent[4096];
    snprintf(parent, sizeof parent, "%s", path);
    char *slash = strrchr(parent, '/');
    if (!slash) die("path is not absolute", path);
    *len = utf16(slash + 1, name, 255);
    if (*len <= 0) die("bad name", path);
    if (slash == parent) slash[1] = 0; else *slash = 0;
    ntfs_inode *dir = open_path(parent);
    if (!dir) die("parent not found", path);
    return dir;
}

static ntfs_inode *create(const char *path, mode_t type) {
    ntfschar name[256];
    int len;
    ntfs_inode *dir = open_parent(path, name, &len);
    ntfs_inode *ni = ntfs_create(dir, 0, name, (u8)len, type);
    if (!ni) die("ntfs_create", path);
    ntfs_inode_close(dir);
    return ni;
}

static void write_data(ntfs_inode *ni, ntfschar *stream, int stream_len, const char *host, size_t sparse, const char *path) {
    FILE *f = fopen(host, "rb");
    if (!f) die("cannot open host file", host);
    ntfs_attr *na = ntfs_attr_open(ni, AT_DATA, stream, stream_len);
    if (!na) die("ntfs_attr_open", path);
    static char block[65536];
    size_t size = sparse && sparse < sizeof block ? sparse : sizeof block;
    s64 position = 0;
    size_t got;
    while ((got = fread(block, 1, size, f)) > 0) {
        int zero = 1;
        for (size_t i = 0; i < got && zero; i++) zero = block[i] == 0;
        if (!(sparse && zero) && ntfs_attr_pwrite(na, position, got, block) != (s64)got) die("ntfs_attr_pwrite", path);
        position += got;
    }
    if (sparse && na->data_size != position && ntfs_attr_truncate(na, position)) die("ntfs_attr_truncate", path);
    ntfs_attr_close(na);
    fclose(f);
}

static void symlink_reparse(const char *path, const char *target) {
    ntfs_inode *ni = create(path, S_IFREG);
    ntfschar t[1024];
    int n = utf16(target, t, 1024);
    for (int i = 0; i < n; i++) if (t[i] == cpu_to_le16('/')) t[i] = cpu_to_le16('\\');
    /* REPARSE_POINT: tag, data length, reserved; symlink data: substitute name offset/length,
       print name offset/length, flags (1 = relative), then the names. */
    unsigned char buffer[8 + 12 + 4096];
    int bytes = n * 2, data = 12 + 2 * bytes;
    uint32_t tag = 0xA000000C, flags = 1;
    uint16_t u16s[6] = { (uint16_t)data, 0, 0, (uint16_t)bytes, (uint16_t)bytes, (uint16_t)bytes };
    memcpy(buffer, &tag, 4);
    memcpy(buffer + 4, u16s, 4);           /* data length, reserved */
    memcpy(buffer + 8, u16s + 2, 8);       /* substitute offset/length, print offset/length */
    memcpy(buffer + 16, &flags, 4);
    memcpy(buffer + 20, t, bytes);
    memcpy(buffer + 20 + bytes, t, bytes);
    if (ntfs_set_ntfs_reparse_data(ni, (const char *)buffer, 8 + data, 0)) die("ntfs_set_ntfs_reparse_data", path);
    ntfs_inode_close(ni);
}

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: ntfs_populate IMAGE MANIFEST\n"); return 2; }
    vol = ntfs_mount(argv[1], NTFS_MNT_NONE);
    if (!vol) die("ntfs_mount", argv[1]);
    NVolSetCompression(vol);
    FILE *manifest = fopen(argv[2], "r");
    if (!manifest) die("cannot open manifest", argv[2]);
    char line[16384];
    while (fgets(line, sizeof line, manifest)) {
        line_number++;
        line[strcspn(line, "\n")] = 0;
        if (!line[0]) continue;
        char *field[8] = { 0 };
        int count = 0;
        for (char *p = line; p && count < 8; count++) {
            field[count] = p;
            p = strchr(p, '\t');
            if (p) *p++ = 0;
        }
        const char *op = field[0];
        errno = 0;
        if (!strcmp(op, "mkdir") && count == 2) {
            ntfs_inode_close(create(field[1], S_IFDIR));
        } else if ((!strcmp(op, "file") && count == 3) || (!strcmp(op, "sparse") && (count == 3 || count == 4))) {
            ntfs_inode *ni = create(field[1], S_IFREG);
            size_t sparse = op[0] != 's' ? 0 : count == 4 ? (size_t)atol(field[3]) : 65536;
            write_data(ni, AT_UNNAMED, 0, field[2], sparse, field[1]);
            ntfs_inode_close(ni);
        } else if (!strcmp(op, "stream") && count == 4) {
            ntfs_inode *ni = open_path(field[1]);
            if (!ni) die("not found", field[1]);
            ntfschar name[256];
            int len = utf16(field[2], name, 255);
            if (ntfs_attr_add(ni, AT_DATA, name, (u8)len, NULL, 0)) die("ntfs_attr_add", field[2]);
            write_data(ni, name, len, field[3], 0, field[1]);
            ntfs_inode_close(ni);
        } else if (!strcmp(op, "link") && count == 3) {
            ntfs_inode *ni = open_path(field[1]);
            if (!ni) die("not found", field[1]);
            ntfschar name[256];
            int len;
            ntfs_inode *dir = open_parent(field[2], name, &len);
            if (ntfs_link(ni, dir, name, (u8)len)) die("ntfs_link", field[2]);
            ntfs_inode_close(ni);
            ntfs_inode_close(dir);
        } else if (!strcmp(op, "compress") && count == 2) {
            ntfs_inode *ni = open_path(field[1]);
            if (!ni) die("not found", field[1]);
            ni->flags |= FILE_ATTR_COMPRESSED;
            NInoFileNameSetDirty(ni);
            ntfs_inode_mark_dirty(ni);
            ntfs_inode_close(ni);
        } else if (!strcmp(op, "dosname") && count == 3) {
            ntfs_inode *ni = open_path(field[1]);
            if (!ni) die("not found", field[1]);
            ntfschar name[256];
            int len;
            ntfs_inode *dir = open_parent(field[1], name, &len);
            /* closes both inodes */
            if (ntfs_set_ntfs_dos_name(ni, dir, field[2], strlen(field[2]), 0)) die("ntfs_set_ntfs_dos_name", field[1]);
        } else if (!strcmp(op, "symlink") && count == 3) {
            symlink_reparse(field[1], field[2]);
        } else if (!strcmp(op, "times") && count == 5) {
            ntfs_inode *ni = open_path(field[1]);
            if (!ni) die("not found", field[1]);
            u64 times[3] = { strtoull(field[2], NULL, 10), strtoull(field[3], NULL, 10), strtoull(field[4], NULL, 10) };
            for (int i = 0; i < 3; i++) times[i] = cpu_to_le64(times[i]);
            if (ntfs_inode_set_times(ni, (const char *)times, sizeof times, 0)) die("ntfs_inode_set_times", field[1]);
            ntfs_inode_close(ni);
        } else {
            die("bad manifest line", op);
        }
    }
    fclose(manifest);
    if (ntfs_umount(vol, FALSE)) { vol = NULL; die("ntfs_umount", argv[1]); }
    return 0;
}
