import Foundation

/// A real SCSI medium changer driven through the `mtx` tool (package mtx) on its SCSI
/// generic node (/dev/sgN). `mtx status` is parsed by `MtxStatus`; moves become
/// `mtx load`, `mtx unload` or `mtx transfer`. mtx numbers import/export slots among the
/// storage elements, after the ordinary slots; `MtxStatus` keeps that mapping.
final class MtxChanger: MediumChanger {
    let device: String
    /// Runs mtx with arguments, returning (exit status, standard output + standard error).
    let runner: ([String]) throws -> (Int32, String)

    init(device: String, runner: (([String]) throws -> (Int32, String))? = nil) {
        self.device = device
        self.runner = runner ?? MtxChanger.runMtx
    }

    static func runMtx(_ arguments: [String]) throws -> (Int32, String) {
        let process = Process()
        let candidates = ["/usr/sbin/mtx", "/usr/bin/mtx", "/sbin/mtx"]
        guard let path = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw TapeDeviceError(ENOENT, "mtx is not installed; install the mtx package to drive a SCSI changer")
        }
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    private func mtx(_ arguments: [String]) throws -> String {
        let (status, output) = try runner(["-f", device] + arguments)
        guard status == 0 else {
            throw TapeDeviceError(EIO, "changer \(device): mtx \(arguments.joined(separator: " ")) failed: "
                                  + output.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        return output
    }

    func status() throws -> MtxStatus { try MtxStatus.parse(try mtx(["status"]), device: device) }

    func inventory() throws -> ChangerInventory { try status().inventory }

    func move(from source: ChangerElement, to destination: ChangerElement) throws {
        let status = try status()
        guard let from = status.inventory.entry(source) else {
            throw TapeDeviceError(ENXIO, "changer \(device) has no element \(source)", refusal: .noSuchElement)
        }
        guard let to = status.inventory.entry(destination) else {
            throw TapeDeviceError(ENXIO, "changer \(device) has no element \(destination)", refusal: .noSuchElement)
        }
        guard from.full else { throw TapeDeviceError(ENOENT, "changer \(device): \(source) is empty", refusal: .sourceEmpty) }
        guard !to.full else {
            throw TapeDeviceError(EEXIST, "changer \(device): \(destination) is full", refusal: .destinationFull)
        }
        try mtx(try MtxChanger.arguments(from: source, to: destination, status: status))
    }

    /// The mtx command for one move (unit-tested): load SLOT DRIVE, unload SLOT DRIVE or
    /// transfer SLOT SLOT, with mail slots turned into mtx storage element numbers.
    static func arguments(from source: ChangerElement, to destination: ChangerElement, status: MtxStatus) throws -> [String] {
        func storage(_ element: ChangerElement) throws -> Int {
            switch element {
            case .slot(let number): return number
            case .mail(let number):
                guard number >= 1 && number <= status.mailElements.count else {
                    throw TapeDeviceError(ENXIO, "changer \(status.device) has no mail slot \(number)", refusal: .noSuchElement)
                }
                return status.mailElements[number - 1]
            case .drive: throw TapeDeviceError(EINVAL, "internal: a drive is not a storage element")
            }
        }
        switch (source, destination) {
        case (.drive(let from), .drive(let to)):
            throw TapeDeviceError(EINVAL, "changer \(status.device): move drive \(from) to drive \(to) through a slot", refusal: .noSuchElement)
        case (.drive(let drive), _): return ["unload", String(try storage(destination)), String(drive)]
        case (_, .drive(let drive)): return ["load", String(try storage(source)), String(drive)]
        default: return ["transfer", String(try storage(source)), String(try storage(destination))]
        }
    }
}
