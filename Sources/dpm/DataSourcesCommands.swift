import Foundation
import Host
import PluginAPI

/// `dpm datasources list`: asks every enabled workload provider to enumerate.
enum DataSourcesCommands {
    static let all = [list]

    struct Row: Encodable {
        var provider: String
        var id: String
        var name: String
        var kind: String
        var size: UInt64
        var details: JSONValue?
    }

    struct ProviderProblem: Encodable {
        var provider: String
        var status: String
        var message: String
    }

    struct Reply: Encodable {
        var datasources: [Row]
        var unavailable: [ProviderProblem]
    }

    static let list = CommandDefinition(
        path: ["datasources", "list"], summary: "List the data sources every enabled workload provider can protect.", arguments: "",
        details: "Providers that are planned or fail to enumerate are listed with the reason; that alone is not a failure."
    ) { invocation in
        let registry = try invocation.registry()
        var reply = Reply(datasources: [], unavailable: [])
        for provider in registry.enabledWorkloads {
            do {
                let sources = try registry.workload(provider.info.id).enumerate()
                reply.datasources += sources.map {
                    Row(provider: provider.info.id, id: $0.id, name: $0.name, kind: $0.kind, size: $0.size, details: $0.details)
                }
            } catch let error as HostError {
                reply.unavailable.append(ProviderProblem(provider: provider.info.id, status: error.code.rawValue, message: error.message))
            }
        }
        if invocation.json {
            try invocation.output.emit(reply)
            return 0
        }
        invocation.output.table(["PROVIDER", "NAME", "KIND", "SIZE", "ID"], reply.datasources.map {
            [$0.provider, $0.name, $0.kind, ByteFormat.string($0.size), $0.id]
        })
        for problem in reply.unavailable {
            invocation.output.line("\(problem.provider): \(problem.status): \(problem.message)")
        }
        return 0
    }
}
