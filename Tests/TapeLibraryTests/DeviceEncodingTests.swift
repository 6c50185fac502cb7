import CTape
import Foundation
@testable import TapeLibraryCore
import TestSupport
import XCTest

/// The thin real-hardware layer: the st declarations, MTIOCGET decoding, `mtx status`
/// parsing and the mtx commands for moves (there is no tape drive or changer here).
final class DeviceEncodingTests: XCTestCase {
    func testShimMatchesTheCLibrarysMtio() throws {
        try TestSupport.require("cc")
        let directory = try TestSupport.temporaryDirectory(self)
        let result = try TestSupport.run(["cc", "-Wall", "-Werror", "-I", TestSupport.repositoryRoot + "/Sources/System/CTape",
                                          TestSupport.repositoryRoot + "/Tests/TapeLibraryTests/Fixtures/ctape_layout.c", "-o", directory + "/layout"])
        XCTAssertEqual(result.status, 0, result.output)
        XCTAssertEqual(try TestSupport.run([directory + "/layout"]).status, 0)
        XCTAssertEqual(MemoryLayout<dpm_mtget>.size, 48)
        XCTAssertEqual(MemoryLayout<dpm_mtop>.size, 8)
    }

    func testStatusDecoding() {
        var raw = dpm_mtget()
        raw.mt_fileno = 3
        raw.mt_blkno = 17
        raw.mt_gstat = Int(bitPattern: UInt(dpm_gmt_eof | dpm_gmt_online | dpm_gmt_wr_prot))
        let status = LinuxTapeDrive.decode(raw)
        XCTAssertEqual(status.fileNumber, 3)
        XCTAssertEqual(status.blockNumber, 17)
        XCTAssertTrue(status.atFilemark && status.online && status.writeProtected)
        XCTAssertFalse(status.beginningOfTape || status.endOfData || status.endOfTape || status.doorOpen)
        raw.mt_gstat = Int(bitPattern: UInt(dpm_gmt_bot | dpm_gmt_dr_open))
        XCTAssertTrue(LinuxTapeDrive.decode(raw).beginningOfTape && LinuxTapeDrive.decode(raw).doorOpen)
    }

    static let sample = """
          Storage Changer /dev/sg3:2 Drives, 6 Slots ( 2 Import/Export )
        Data Transfer Element 0:Full (Storage Element 3 Loaded):VolumeTag = E01003L8                        
        Data Transfer Element 1:Empty
              Storage Element 1:Full :VolumeTag=E01001L8                        
              Storage Element 2:Empty
              Storage Element 3:Empty
              Storage Element 4:Full 
              Storage Element 5 IMPORT/EXPORT:Empty
              Storage Element 6 IMPORT/EXPORT:Full :VolumeTag=CLN001L1
        """

    func testMtxStatusParsing() throws {
        let status = try MtxStatus.parse(Self.sample, device: "/dev/sg3")
        let inventory = status.inventory
        XCTAssertEqual(inventory.drives.count, 2)
        XCTAssertEqual(inventory.entry(.drive(0)), .init(element: .drive(0), barcode: "E01003L8", full: true, loadedFrom: 3))
        XCTAssertEqual(inventory.entry(.drive(1))?.full, false)
        XCTAssertEqual(inventory.slots.count, 4)
        XCTAssertEqual(inventory.entry(.slot(1))?.barcode, "E01001L8")
        XCTAssertEqual(inventory.entry(.slot(4)), .init(element: .slot(4), barcode: nil, full: true, loadedFrom: nil), "a cartridge without a label")
        XCTAssertEqual(inventory.entry(.mail(2))?.barcode, "CLN001L1")
        XCTAssertEqual(status.mailElements, [5, 6])
        XCTAssertThrowsError(try MtxStatus.parse("mtx: cannot open SCSI device '/dev/sg3'", device: "/dev/sg3"))
    }

    func testMtxMoveCommands() throws {
        let status = try MtxStatus.parse(Self.sample, device: "/dev/sg3")
        XCTAssertEqual(try MtxChanger.arguments(from: .slot(1), to: .drive(1), status: status), ["load", "1", "1"])
        XCTAssertEqual(try MtxChanger.arguments(from: .drive(0), to: .slot(3), status: status), ["unload", "3", "0"])
        XCTAssertEqual(try MtxChanger.arguments(from: .mail(2), to: .slot(2), status: status), ["transfer", "6", "2"])
        XCTAssertEqual(try MtxChanger.arguments(from: .slot(1), to: .mail(1), status: status), ["transfer", "1", "5"])
        XCTAssertThrowsError(try MtxChanger.arguments(from: .mail(3), to: .slot(2), status: status))
        var calls: [[String]] = []
        let changer = MtxChanger(device: "/dev/sg3") { arguments in
            calls.append(arguments)
            return (0, Self.sample)
        }
        try changer.move(from: .slot(1), to: .drive(1))
        XCTAssertEqual(calls.last, ["-f", "/dev/sg3", "load", "1", "1"])
        XCTAssertThrowsError(try changer.move(from: .slot(2), to: .drive(1))) { error in
            XCTAssertEqual((error as? TapeDeviceError)?.refusal, .sourceEmpty)
        }
        XCTAssertThrowsError(try changer.move(from: .slot(1), to: .drive(0))) { error in
            XCTAssertEqual((error as? TapeDeviceError)?.refusal, .destinationFull)
        }
    }

    func testPaxRecordsAndHeadersRoundTrip() {
        let records = [("path", String(repeating: "x", count: 150)), ("SCHILY.xattr.user.dpm.volume", "{\"a\":1}")]
        let encoded = PaxRecords.encode(records)
        XCTAssertEqual(PaxRecords.decode(encoded)?.map { $0.0 + "=" + $0.1 }, records.map { $0.0 + "=" + $0.1 })
        let header = TarHeader(name: "dpm/a", size: 12345, typeflag: UInt8(ascii: "0"), mtime: 99)
        XCTAssertEqual(TarHeader.parse(header.encoded()[...]), header)
        var damaged = header.encoded()
        damaged[10] ^= 1
        XCTAssertNil(TarHeader.parse(damaged[...]), "a bad checksum is refused")
    }
}
