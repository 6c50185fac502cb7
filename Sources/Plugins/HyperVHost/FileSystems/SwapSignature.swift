import Foundation

/// Recognises a Linux swap area (a swap partition, or the content of a swap file), so that
/// backups can skip it.
///
/// `mkswap` writes a header page: the magic "SWAPSPACE2" (version 1 swap, Linux ≥ 2.2) or the
/// obsolete "SWAP-SPACE" (version 0) occupies the last 10 bytes of the first page. The page
/// size is the one of the machine that ran mkswap: 4096 on x86-64 (what Hyper-V guests use);
/// 8, 16 and 64 KiB pages (arm64, ppc64) are checked too, since the check is cheap and the
/// magic at those offsets is equally unambiguous.
enum SwapSignature {
    static let pageSizes: [UInt64] = [4096, 8192, 16384, 65536]

    static func isLinuxSwap(_ volume: BlockSource) -> Bool {
        for page in pageSizes where volume.size >= page {
            guard let magic = try? volume.bytes(at: page - 10, count: 10) else { continue }
            if magic.matches("SWAPSPACE2", at: 0) || magic.matches("SWAP-SPACE", at: 0) { return true }
        }
        return false
    }
}
