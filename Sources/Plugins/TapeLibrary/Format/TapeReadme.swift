/// The README.txt of every label: how to restore from this tape with standard tools alone
/// (GNU tar, zstd, OpenSSL 3, od, head, tail). The archive layout it describes is the
/// host's (Host's `TierArchiveManifest`); the key wrapping is Host's `TierKey`. The test
/// `TapeTests.testTheLabelReadmeRestoresADiskWithStandardToolsAlone` runs these commands.
enum TapeReadme {
    static func text(_ label: TapeLabel) -> String {
        """
        dpm tape \(label.barcode) (UUID \(label.uuid))
        pool \(label.pool), media set \(label.mediaSet), tape \(label.sequence) of the set
        written by dpm server \(label.serverId), format dpm-tape version \(label.formatVersion)

        Every file on this tape is a POSIX pax archive; GNU tar, bsdtar and pax read it.
        Records are 256 KiB (tar -b 512). File 0 (this one) is the label. After it come
        recovery points, each in one or more files, and catalog files (dpm-tape/catalog.json)
        listing what each file holds: read the last catalog to find a recovery point.

        1. Extract a recovery point:
          mt -f /dev/nst0 rewind
          mt -f /dev/nst0 fsf N                  # N = the file number from the catalog
          tar -b 512 -xvf /dev/nst0              # extracts dpm/DS/RP/ARCHIVE.json,
                                                 # dpm/DS/RP/chunks/*, dpm/DS/RP/index.dpmidx
        A recovery point continued on a second tape is extracted with GNU tar's multi-volume
        mode, the files given in order: tar -b 512 -M -x -f FILE_ON_TAPE1 -f FILE_ON_TAPE2
        (with a drive, tar -M asks for the next tape; position it with mt fsf first).
        ARCHIVE.json describes the point (data source, time, consistency, streams).

        2. Each chunk dpm/DS/RP/chunks/NAME.zst is one zstd frame (NAME.bin: not compressed):
          zstd -d < NAME.zst > chunk             # sha256sum chunk prints NAME when unencrypted

        3. Rebuild a disk (stream 0; the point's streams are its disks in ARCHIVE.json order).
        index.dpmidx is little-endian: bytes 32-39 hold the stream table's offset T, 40-47 the
        entry area's offset E; stream i's record at T+48i holds its first entry (8 bytes at +8)
        and entry count (8 at +16); an entry is 40 bytes: the chunk NAME (32), its length (4),
        a flag (1: 0 = data, else zeros):
          cd dpm/DS/RP; I=index.dpmidx; S=0
          u8() { od -An -t u8 -j "$1" -N 8 "$I" | tr -d ' '; }
          T=$(u8 32); E=$(u8 40); F=$(u8 $((T+48*S+8))); C=$(u8 $((T+48*S+16)))
          od -An -v -t x1 -w40 -j $((E+40*F)) -N $((40*C)) "$I" | while read -r line; do
            set -- $line; n=$(echo $line | cut -d' ' -f1-32 | tr -d ' ')
            if [ "${37}" = 00 ]; then zstd -dc chunks/$n.zst; else head -c $((0x${36}${35}${34}${33})) /dev/zero; fi
          done > disk.raw

        4. ENCRYPTION
        \(label.encryption == nil ? "The recovery points on this tape are not encrypted." : "The recovery points on this tape are encrypted with AES-256-GCM. Key fingerprint: \(label.encryption?["key_fingerprint"]?.stringValue ?? "?").")
        Encrypted chunks are named NAME.zst.aes: a 12-byte nonce, the AES-256-GCM ciphertext
        of the zstd frame, a 16-byte tag. The key is in dpm-tape/label.json under
        encryption.wrapped_key (salt, iterations, nonce, wrapped: hex), locked by the passphrase:
          KEK=$(openssl kdf -keylen 32 -kdfopt digest:SHA256 -kdfopt pass:"$PASSPHRASE" \\
                -kdfopt hexsalt:$SALT -kdfopt iter:$ITERATIONS PBKDF2 | tr -d :)
          MASTER=$(echo $WRAPPED | xxd -r -p | openssl enc -d -aes-256-ctr -K $KEK -iv ${NONCE}00000002 | xxd -p -c 64)
          KEY=$(printf 'dpm chunk encryption' | openssl dgst -sha256 -mac HMAC -macopt hexkey:$MASTER -r | cut -c1-64)
        (GCM is CTR mode with the counter starting at nonce||00000002, so openssl enc can
        decrypt it; a wrong passphrase gives garbage, which the next step exposes.) A chunk:
          f=chunks/NAME.zst.aes; IV=$(head -c 12 $f | xxd -p)
          tail -c +13 $f | head -c -16 | openssl enc -d -aes-256-ctr -K $KEY -iv ${IV}00000002 | zstd -d > chunk
        NAME is then HMAC-SHA-256 of the chunk under the naming key:
          NK=$(printf 'dpm chunk digest' | openssl dgst -sha256 -mac HMAC -macopt hexkey:$MASTER -r | cut -c1-64)
          openssl dgst -sha256 -mac HMAC -macopt hexkey:$NK -r chunk     # prints NAME
        In step 3, replace `zstd -dc chunks/$n.zst` with the two lines above for chunks/$n.zst.aes.
        """
    }
}
