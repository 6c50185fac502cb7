import Foundation

/// A blocking first-in first-out queue with a capacity, for the backup pipeline: producers
/// wait when it is full, consumers when it is empty. `close` wakes everyone; after it, `pop`
/// drains what is left and then returns nil.
final class BoundedQueue<Element> {
    private var items: [Element] = []
    private var head = 0
    private let capacity: Int
    private let condition = NSCondition()
    private var closed = false

    init(capacity: Int) { self.capacity = max(1, capacity) }

    /// Adds an element, waiting for room; false if the queue was closed.
    @discardableResult
    func push(_ element: Element) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        while items.count - head >= capacity && !closed { condition.wait() }
        guard !closed else { return false }
        items.append(element)
        condition.broadcast()
        return true
    }

    func pop() -> Element? {
        condition.lock()
        defer { condition.unlock() }
        while items.count == head && !closed { condition.wait() }
        guard items.count > head else { return nil }
        let element = items[head]
        head += 1
        if head > 64 && head * 2 > items.count {
            items.removeFirst(head)
            head = 0
        }
        condition.broadcast()
        return element
    }

    func close() {
        condition.lock()
        closed = true
        condition.broadcast()
        condition.unlock()
    }
}

/// Runs `count` threads executing `body(index)` and waits for all of them.
enum ThreadGroup {
    static func run(_ count: Int, name: String, _ body: @escaping (Int) -> Void) -> () -> Void {
        let group = DispatchGroup()
        for index in 0..<count {
            group.enter()
            let thread = Thread {
                body(index)
                group.leave()
            }
            thread.name = "\(name)-\(index)"
            thread.stackSize = 1 << 20
            thread.start()
        }
        return { group.wait() }
    }
}
