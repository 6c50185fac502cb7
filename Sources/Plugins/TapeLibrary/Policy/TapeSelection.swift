import Foundation

/// Which tape an archive goes to: DPM's rules, as pure functions of the state (unit-tested).
///
/// - Without co-location every long-term copy starts a tape of its own, except daily
///   copies on a standalone drive (a library with one drive), which keep appending to the
///   same tape of their pool until it is full.
/// - With co-location, archives of several groups share a tape when (a) the new archive's
///   expiry, measured from now, is within ±17% of the tape's furthest expiry measured from
///   now, and (b) now is within the first 15% of the retention of the first archive written
///   to the tape (measured from when it was written).
/// - Encrypted and unencrypted archives never share a tape, nor archives of two keys.
/// - A new tape is taken in this order: free tapes of the pool, expired tapes of the pool,
///   any free tape, any expired tape (WORM media is never reused once written). Imported,
///   unrecognised, suspect, cleaning, full and offsite-ready tapes are never written.
enum TapeSelection {
    struct Request {
        var pool: String
        var expires: Date
        var retentionDays: Int
        var colocate: Bool
        var frequency: String?
        var fingerprint: String?
        var encrypted: Bool
        var standalone: Bool
    }

    enum Choice: Equatable {
        case append(String)
        case fresh(String)
    }

    static let expiryTolerance = 0.17
    static let windowFraction = 0.15

    /// Whether an archive may join `tape` under the co-location rules.
    static func colocationAllows(_ tape: TapeRecord, expires: Date, now: Date) -> Bool {
        guard tape.colocated, let furthest = tape.furthestExpiry, let first = tape.firstWritten,
              let retention = tape.firstRetentionDays else { return false }
        let tapeSpan = furthest.timeIntervalSince(now)
        let newSpan = expires.timeIntervalSince(now)
        guard tapeSpan > 0, abs(newSpan - tapeSpan) <= expiryTolerance * tapeSpan else { return false }
        return now.timeIntervalSince(first) <= windowFraction * Double(retention) * 86_400
    }

    static func sameEncryption(_ tape: TapeRecord, _ request: Request) -> Bool {
        tape.fingerprint == request.fingerprint && (tape.encryption != nil) == request.encrypted
    }

    /// Whether an appendable tape can still take archives at all (else it is offsite-ready).
    static func staysAppendable(_ tape: TapeRecord, standaloneDaily: Bool, now: Date) -> Bool {
        if tape.colocated, let first = tape.firstWritten, let retention = tape.firstRetentionDays {
            return now.timeIntervalSince(first) <= windowFraction * Double(retention) * 86_400
        }
        return standaloneDaily
    }

    /// The tape for `request` among `candidates` (tapes present in the library), or nil.
    static func choose(_ request: Request, candidates: [TapeRecord], now: Date) -> Choice? {
        let sorted = candidates.sorted { $0.barcode < $1.barcode }
        for tape in sorted where tape.state == .appendable && sameEncryption(tape, request) {
            if request.colocate && colocationAllows(tape, expires: request.expires, now: now) { return .append(tape.barcode) }
            if !request.colocate && !tape.colocated && request.standalone && request.frequency == "daily" && tape.pool == request.pool {
                return .append(tape.barcode)
            }
        }
        let reusable: (TapeRecord) -> Bool = { $0.state == .free || ($0.state == .expired && !$0.worm) }
        let order: [(TapeRecord) -> Bool] = [
            { $0.state == .free && $0.pool == request.pool },
            { $0.state == .expired && !$0.worm && $0.pool == request.pool },
            { $0.state == .free },
            { reusable($0) },
        ]
        for rule in order {
            if let tape = sorted.first(where: rule) { return .fresh(tape.barcode) }
        }
        return nil
    }
}
