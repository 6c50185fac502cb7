/// One tape drive opened in variable-block mode, with the semantics of the Linux st driver
/// on a no-rewind device (`/dev/nstN`, see the kernel's Documentation/scsi/st.rst). The
/// contract every backend keeps (checked by the conformance suite in Tests/TapeLibraryTests):
///
/// - `write` writes one record of exactly `data.count` bytes.
/// - `read` reads one record. A buffer smaller than the record fails with ENOMEM (and the
///   record is passed). At a filemark it returns 0 and moves past the filemark. At the end
///   of data it returns 0 twice in a row (counting a filemark just read), then fails with EIO.
/// - Early warning: the write that reaches it completes; the next write fails with ENOSPC,
///   the one after is allowed (a trailer), then ENOSPC and success alternate until the
///   physical end, where writes fail with EIO.
/// - Writing anywhere but at the end of data truncates everything after the write.
/// - `close` writes a filemark when the last operation was a write, and so do `rewind`,
///   `backwardSpaceFiles` and `seek` before moving; the position survives a close.
/// - A write-protected cartridge refuses writes with EACCES; no cartridge gives ENOMEDIUM.
protocol TapeDrive: AnyObject {
    /// The device, for messages: "/dev/nst0", "vtl lib1 drive 0".
    var name: String { get }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int
    func write(_ data: UnsafeRawBufferPointer) throws
    /// MTWEOF.
    func writeFilemarks(_ count: Int) throws
    /// MTREW.
    func rewind() throws
    /// MTFSF: moves past `count` filemarks; EIO (positioned at the end of data) when fewer exist.
    func forwardSpaceFiles(_ count: Int) throws
    /// MTBSF: moves back over `count` filemarks, stopping before the last one crossed.
    func backwardSpaceFiles(_ count: Int) throws
    /// MTBSR: moves back over `count` records; EIO at a filemark or the beginning of tape.
    func backwardSpaceRecords(_ count: Int) throws
    /// MTERASE from the current position: everything after it is gone.
    func erase() throws
    /// MTEOM: to the end of recorded data.
    func spaceToEndOfData() throws
    /// MTSEEK to a logical block (filemarks count as blocks); file and block numbers in
    /// `status` are -1 afterwards, until a rewind.
    func seek(block: Int) throws
    /// MTIOCPOS.
    func tell() throws -> Int
    /// MTIOCGET.
    func status() throws -> TapeStatus
    /// Releases the drive (writing a filemark if the last operation was a write).
    func close() throws
}

/// MTIOCGET's answer.
struct TapeStatus: Equatable, Codable, Sendable {
    /// The file number (the count of filemarks before the position) and the record number
    /// inside the file; -1 when unknown.
    var fileNumber: Int
    var blockNumber: Int
    var beginningOfTape: Bool
    var atFilemark: Bool
    var endOfData: Bool
    /// Past early warning.
    var endOfTape: Bool
    var writeProtected: Bool
    var online: Bool
    var doorOpen: Bool
}

