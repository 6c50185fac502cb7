/// An access key pair, with the session token of temporary credentials. `description` never
/// shows the secret.
struct S3Credentials: CustomStringConvertible, Sendable {
    var accessKeyID: String
    var secretAccessKey: String
    var sessionToken: String?

    init(accessKeyID: String, secretAccessKey: String, sessionToken: String? = nil) {
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
    }

    /// No credentials: requests go unsigned, as for a public bucket.
    static let anonymous = S3Credentials(accessKeyID: "", secretAccessKey: "")

    var isAnonymous: Bool { accessKeyID.isEmpty && secretAccessKey.isEmpty }

    var description: String { isAnonymous ? "no credentials" : "access key \(accessKeyID)" }
}
