import Foundation
import Glibc
@testable import TapeLibraryCore
import TestSupport
import XCTest

/// The st semantics of `TapeDrive` (Documentation/scsi/st.rst, man 4 st), checked against
/// the virtual library, and against a real drive when TAPE_DEVICE names a no-rewind node
/// holding a scratch tape (it is overwritten).
final class DriveConformanceTests: XCTestCase {
    var fixture: TapeFixture!
    var library: VirtualLibrary!

    override func setUpWithError() throws {
        fixture = try TapeFixture(self, slots: 4, drives: 2, capacity: "4M", earlyWarning: "1M", barcodes: ["C00001L8", "W00002L8", "CLN003L1"])
        library = try VirtualLibrary(directory: fixture.vtl)
        try library.move(from: .slot(1), to: .drive(0))
    }

    func drives() throws -> [TapeDrive] {
        var drives: [TapeDrive] = [try library.openDrive(0)]
        if let path = ProcessInfo.processInfo.environment["TAPE_DEVICE"] { drives.append(try LinuxTapeDrive(path: path)) }
        return drives
    }

    func record(_ byte: UInt8, _ count: Int = 1000) -> [UInt8] { [UInt8](repeating: byte, count: count) }

    func write(_ drive: TapeDrive, _ bytes: [UInt8]) throws { try bytes.withUnsafeBytes { try drive.write($0) } }

    func read(_ drive: TapeDrive, capacity: Int = 65536) throws -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: capacity)
        let count = try buffer.withUnsafeMutableBytes { try drive.read(into: $0) }
        return Array(buffer[0..<count])
    }

    func errno(_ body: () throws -> Void) -> Int32? {
        do { try body(); return nil } catch let error as TapeDeviceError { return error.errno } catch { return -1 }
    }

    func testRecordsFilemarksZeroReadsAndEndOfData() throws {
        for drive in try drives() {
            try drive.rewind()
            try write(drive, record(1, 1000))
            try write(drive, record(2, 3000))
            try drive.writeFilemarks(1)
            try write(drive, record(3, 512))
            try drive.rewind()
            XCTAssertEqual(try read(drive), record(1, 1000), "one write is one record")
            XCTAssertEqual(try read(drive), record(2, 3000))
            XCTAssertEqual(try read(drive), [], "a filemark reads as 0")
            XCTAssertEqual(try drive.status().fileNumber, 1)
            XCTAssertEqual(try read(drive), record(3, 512))
            // rewind wrote the filemark the write owed; after it comes the end of data.
            XCTAssertEqual(try read(drive), [], "the closing filemark")
            XCTAssertEqual(try read(drive), [], "end of data: a second 0 in a row")
            XCTAssertEqual(errno { _ = try read(drive) }, EIO, "then EIO")
            try drive.rewind()
            XCTAssertTrue(try drive.status().beginningOfTape)
            try drive.close()
        }
    }

    func testShortBufferFailsWithENOMEMAndBackspaceRereads() throws {
        for drive in try drives() {
            try drive.rewind()
            try write(drive, record(7, 4096))
            try drive.rewind()
            XCTAssertEqual(errno { _ = try read(drive, capacity: 1024) }, ENOMEM)
            try drive.backwardSpaceRecords(1)
            XCTAssertEqual(try read(drive, capacity: 4096), record(7, 4096))
            try drive.close()
        }
    }

    func testSpacingFilesAndTellCountFilemarksAsBlocks() throws {
        for drive in try drives() {
            try drive.rewind()
            for file in 0..<4 {
                try write(drive, record(UInt8(file), 100))
                try write(drive, record(UInt8(file), 100))
                try drive.writeFilemarks(1)
            }
            try drive.rewind()
            try drive.forwardSpaceFiles(2)
            XCTAssertEqual(try drive.tell(), 6, "2 files of 2 records + 2 filemarks")
            XCTAssertEqual(try drive.status().fileNumber, 2)
            XCTAssertEqual(try read(drive, capacity: 100).first, 2)
            try drive.backwardSpaceFiles(1)
            XCTAssertEqual(try drive.tell(), 5, "before the filemark ending file 1")
            XCTAssertEqual(errno { try drive.forwardSpaceFiles(10) }, EIO, "MTFSF past the end of data")
            XCTAssertTrue(try drive.status().endOfData)
            try drive.seek(block: 3)
            XCTAssertEqual(try drive.status().fileNumber, -1, "file number unknown after MTSEEK")
            XCTAssertEqual(try read(drive, capacity: 100).first, 1)
            try drive.close()
        }
    }

    func testOverwriteTruncatesEverythingAfter() throws {
        for drive in try drives() {
            try drive.rewind()
            for byte: UInt8 in 1...3 { try write(drive, record(byte, 100)); try drive.writeFilemarks(1) }
            try drive.rewind()
            try drive.forwardSpaceFiles(1)
            try write(drive, record(9, 100))
            try drive.rewind()
            try drive.forwardSpaceFiles(1)
            XCTAssertEqual(try read(drive, capacity: 100), record(9, 100))
            XCTAssertEqual(try read(drive), [], "the filemark rewind wrote")
            XCTAssertEqual(try read(drive), [], "file 3 is gone: end of data")
            XCTAssertEqual(errno { _ = try read(drive) }, EIO)
            try drive.close()
        }
    }

    func testEarlyWarningThenENOSPCThenTrailerThenPhysicalEnd() throws {
        let drive = try library.openDrive(0)
        try drive.rewind()
        let piece = record(5, 256 << 10)
        var written = 0
        while true {
            if let code = errno({ try write(drive, piece) }) { XCTAssertEqual(code, ENOSPC); break }
            written += piece.count
        }
        XCTAssertGreaterThanOrEqual(written, 3 << 20, "early warning sits 1 MiB before the 4 MiB end")
        XCTAssertLessThan(written, 4 << 20)
        XCTAssertTrue(try drive.status().endOfTape)
        XCTAssertNil(errno { try write(drive, piece) }, "the write after ENOSPC passes (a trailer)")
        XCTAssertEqual(errno { try write(drive, piece) }, ENOSPC, "then ENOSPC again")
        XCTAssertNil(errno { try write(drive, piece) })
        var last: Int32?
        for _ in 0..<16 { last = errno { try write(drive, piece) }; if last == EIO { break } }
        XCTAssertEqual(last, EIO, "past the physical end writes fail with EIO")
        XCTAssertNil(errno { try drive.writeFilemarks(1) }, "a filemark still fits")
        try drive.close()
    }

    func testCloseWritesFilemarkAndPositionSurvives() throws {
        var drive: TapeDrive? = try library.openDrive(0)
        try drive!.rewind()
        try write(drive!, record(1, 100))
        try drive!.close()
        drive = try library.openDrive(0)
        XCTAssertEqual(try drive!.tell(), 2, "after the record and the filemark close wrote")
        try drive!.rewind()
        XCTAssertEqual(try read(drive!, capacity: 100), record(1, 100))
        XCTAssertEqual(try read(drive!), [])
        try drive!.close()
    }

    func testDriveInUseWriteProtectWormAndCleaning() throws {
        let drive = try library.openDrive(0)
        XCTAssertEqual(errno { _ = try library.openDrive(0) }, EBUSY, "a drive another holder has open is in use")
        XCTAssertEqual((try? library.move(from: .drive(0), to: .slot(4))) == nil, true)
        do { try library.move(from: .drive(0), to: .slot(4)); XCTFail("moved out of a drive in use") } catch let error as TapeDeviceError {
            XCTAssertEqual(error.refusal, .driveInUse)
        }
        try drive.close()
        try library.setMeta("C00001L8") { $0.writeProtected = true }
        let protected = try library.openDrive(0)
        XCTAssertEqual(errno { try write(protected, record(1)) }, EACCES)
        XCTAssertTrue(try protected.status().writeProtected)
        try protected.close()
        try library.move(from: .drive(0), to: .slot(1))
        try library.move(from: .slot(2), to: .drive(1))
        let worm = try library.openDrive(1)
        try write(worm, record(1)); try worm.writeFilemarks(1); try write(worm, record(2))
        try worm.rewind()
        XCTAssertEqual(errno { try write(worm, record(3)) }, EACCES, "WORM media is not overwritten")
        try worm.spaceToEndOfData()
        XCTAssertNil(errno { try write(worm, record(4)) }, "but appended to")
        try worm.close()
        try library.move(from: .slot(3), to: .drive(0))
        let cleaning = try library.openDrive(0)
        XCTAssertEqual(errno { _ = try read(cleaning) }, EIO, "a cleaning cartridge holds no data")
        try cleaning.close()
    }

    func testChangerRefusals() throws {
        func refusal(_ body: () throws -> Void) -> TapeDeviceError.ChangerRefusal? {
            do { try body(); return nil } catch let error as TapeDeviceError { return error.refusal } catch { return nil }
        }
        XCTAssertEqual(refusal { try library.move(from: .slot(4), to: .drive(1)) }, .sourceEmpty)
        XCTAssertEqual(refusal { try library.move(from: .slot(2), to: .drive(0)) }, .destinationFull)
        XCTAssertEqual(refusal { try library.move(from: .slot(2), to: .slot(9)) }, .noSuchElement)
        try library.setDriveOffline(1, true)
        XCTAssertEqual(errno { _ = try library.openDrive(1) }, EIO, "an offline drive does not open")
        let inventory = try library.inventory()
        XCTAssertEqual(inventory.entry(.drive(0))?.barcode, "C00001L8")
        XCTAssertEqual(inventory.entry(.drive(0))?.loadedFrom, 1)
        XCTAssertEqual(inventory.entry(.slot(1))?.full, false)
    }
}
