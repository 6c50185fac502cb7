import CLinux
import Foundation
import PluginAPI

/// Where a VM's file lives: on local (or cluster-shared) storage, or on an SMB 3.0 share
/// named by a UNC path (`//server/share/dir/disk.vhdx` or `\\server\share\dir\disk.vhdx`).
///
/// Behaviour 5 refuses VM components split between local and remote storage, and shares
/// addressed by IP address; both are decided here, before any file is opened.
struct StoragePath: Equatable {
    enum Kind: Equatable { case local, smb(server: String, share: String, rest: String) }

    let original: String
    let kind: Kind

    init(_ path: String) {
        original = path
        let normalised = path.replacingOccurrences(of: "\\", with: "/")
        if normalised.hasPrefix("//") {
            let parts = normalised.dropFirst(2).split(separator: "/", omittingEmptySubsequences: true).map(String.init)
            kind = .smb(server: parts.first ?? "", share: parts.count > 1 ? parts[1] : "", rest: parts.dropFirst(2).joined(separator: "/"))
        } else {
            kind = .local
        }
    }

    var isRemote: Bool { if case .smb = kind { return true }; return false }

    /// Whether the SMB server is named by an IPv4 or IPv6 address.
    var serverIsIPAddress: Bool {
        guard case .smb(let server, _, _) = kind else { return false }
        let host = server.trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        var v4 = in_addr()
        var v6 = in6_addr()
        return inet_pton(AF_INET, host, &v4) == 1 || inet_pton(AF_INET6, host, &v6) == 1 || host.hasSuffix(".ipv6-literal.net")
    }

    /// The local path through which this host reads the file: the path itself for local
    /// storage; for a UNC path, the share's mount point from the `shares` setting
    /// (`//server/share=/mount/point;…`) or from /proc/mounts (cifs).
    func localPath(shares: String?) throws -> String {
        guard case .smb(let server, let share, let rest) = kind else { return original }
        let unc = "//\(server)/\(share)".lowercased()
        for mapping in (shares ?? "").split(separator: ";") {
            let pair = mapping.split(separator: "=", maxSplits: 1).map { String($0).trimmingCharacters(in: .whitespaces) }
            if pair.count == 2, pair[0].replacingOccurrences(of: "\\", with: "/").lowercased() == unc {
                return rest.isEmpty ? pair[1] : pair[1] + "/" + rest
            }
        }
        if let mounts = try? String(contentsOfFile: "/proc/mounts", encoding: .utf8) {
            for line in mounts.split(separator: "\n") {
                let fields = line.split(separator: " ").map(String.init)
                if fields.count >= 3, ["cifs", "smb3"].contains(fields[2]), fields[0].replacingOccurrences(of: "\\", with: "/").lowercased() == unc {
                    return rest.isEmpty ? fields[1] : fields[1] + "/" + rest
                }
            }
        }
        throw PluginError(.notFound, "share //\(server)/\(share) is not mounted on this host; mount it (mount -t cifs) or map it with "
            + "`dpm config set hyperv-host.shares '//\(server)/\(share)=/mount/point'`")
    }

    /// Whether a local directory is on an SMB/CIFS file system (so SMB path rules apply).
    static func isOnSMBMount(_ directory: String) -> Bool {
        let type = UInt32(truncatingIfNeeded: dpm_filesystem_type(directory))
        return type == 0xFF53_4D42 || type == 0xFE53_4D42 || type == 0x517B
    }
}
