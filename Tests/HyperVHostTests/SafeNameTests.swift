import XCTest
@testable import HyperVHost

/// Names from guest file systems made safe for the recovery folder.
final class SafeNameTests: XCTestCase {
    func testUnsafeNamesAreRewritten() {
        XCTAssertEqual(SafeName.sanitise("report.txt"), "report.txt")
        XCTAssertEqual(SafeName.sanitise(".."), "__")
        XCTAssertEqual(SafeName.sanitise("."), "_")
        XCTAssertEqual(SafeName.sanitise(""), "_empty_")
        XCTAssertEqual(SafeName.sanitise("/etc/passwd"), "_etc_passwd")
        XCTAssertEqual(SafeName.sanitise("a\0b"), "a_b")
        XCTAssertEqual(SafeName.sanitise("\u{1b}[2J"), "_[2J")
        for device in ["CON", "con.txt", "Aux", "NUL.tar.gz", "COM1", "lpt9.log"] {
            XCTAssertEqual(SafeName.sanitise(device), "_" + device, device)
        }
        XCTAssertEqual(SafeName.sanitise("CONSOLE"), "CONSOLE")
    }

    func testOverLongNamesAreShortenedAndStayDistinct() {
        // 255 UTF-16 units on NTFS can be 765 bytes of UTF-8, three times what Linux allows.
        let first = String(repeating: "日", count: 250) + "1"
        let second = String(repeating: "日", count: 250) + "2"
        let a = SafeName.sanitise(first), b = SafeName.sanitise(second)
        XCTAssertLessThanOrEqual(a.utf8.count, 255)
        XCTAssertLessThanOrEqual(b.utf8.count, 255)
        XCTAssertNotEqual(a, b)
        XCTAssertTrue(a.hasPrefix("日日日"))
        XCTAssertEqual(SafeName.sanitise(a), a, "a safe name stays as it is")
    }
}
