import Foundation

/// Runs many blocking requests on a bounded number of threads.
///
/// `map` starts at most `limit` threads; each takes the next index until all are taken, so
/// the work is spread however long each item takes. The first error stops new items from
/// starting (items already running finish) and is rethrown; results keep the order of
/// their indexes. The client's own `maxConcurrentRequests` still bounds what is on the wire.
enum RequestPool {
    static func map<Result>(_ count: Int, limit: Int, _ body: @escaping (Int) throws -> Result) throws -> [Result] {
        guard count > 0 else { return [] }
        let threads = max(1, min(limit, count))
        if threads == 1 { return try (0..<count).map(body) }
        let work = Work<Result>(count: count)
        let group = DispatchGroup()
        for index in 0..<threads {
            group.enter()
            let thread = Thread {
                defer { group.leave() }
                while let item = work.take() {
                    do {
                        work.finish(item, try body(item))
                    } catch {
                        work.fail(error)
                        return
                    }
                }
            }
            thread.name = "s3-request-\(index)"
            thread.stackSize = 1 << 20
            thread.start()
        }
        group.wait()
        return try work.results()
    }

    /// Runs each closure, at most `limit` at a time.
    static func run(_ tasks: [() throws -> Void], limit: Int) throws {
        _ = try map(tasks.count, limit: limit) { try tasks[$0]() }
    }

    /// The shared progress of one `map`, behind a lock.
    private final class Work<Result>: @unchecked Sendable {
        private let lock = NSLock()
        private var slots: [Result?]
        private var next = 0
        private var failure: Error?

        init(count: Int) { slots = Array(repeating: nil, count: count) }

        /// The next index to run, or nil when all are taken or one failed.
        func take() -> Int? {
            lock.lock()
            defer { lock.unlock() }
            guard failure == nil, next < slots.count else { return nil }
            next += 1
            return next - 1
        }

        func finish(_ index: Int, _ result: Result) {
            lock.lock()
            slots[index] = result
            lock.unlock()
        }

        func fail(_ error: Error) {
            lock.lock()
            if failure == nil { failure = error }
            lock.unlock()
        }

        func results() throws -> [Result] {
            lock.lock()
            defer { lock.unlock() }
            if let failure { throw failure }
            return slots.compactMap { $0 }
        }
    }
}
