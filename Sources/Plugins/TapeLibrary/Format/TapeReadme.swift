/// The README.txt of every label: how to restore from this tape with standard tools alone.
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

        Restore without dpm:
          mt -f /dev/nst0 rewind
          mt -f /dev/nst0 fsf N                  # N = the file number from the catalog
          tar -b 512 -xvf /dev/nst0              # extracts dpm/<rp>/manifest.json,
                                                 # dpm/<rp>/index.dpmidx, dpm/<rp>/chunks/*.zst
        A recovery point continued on a second tape is extracted with GNU tar's multi-volume
        mode, the files given in order: tar -b 512 -M -x -f FILE_ON_TAPE1 -f FILE_ON_TAPE2
        (with a drive, tar -M asks for the next tape; position it with mt fsf first).

        Each chunk dpm/<rp>/chunks/<sha256>.zst is one zstd frame:
          zstd -d < chunk.zst > chunk            # sha256sum chunk equals its name when unencrypted
        The index dpm/<rp>/index.dpmidx lists, for every stream of the point, the chunk
        digests in order (its layout is documented in the manifest); concatenating the
        decompressed chunks in index order rebuilds each disk or file.

        ENCRYPTION
        \(label.encryption == nil ? "The recovery points on this tape are not encrypted." : "The recovery points on this tape are encrypted with AES-256-GCM. Key fingerprint: \(label.encryption?["key_fingerprint"]?.stringValue ?? "?").")
        [openssl commands to unwrap the key with the passphrase and decrypt each chunk: to be
        supplied by the host's encryption format; until then see the dpm documentation.]
        """
    }
}
