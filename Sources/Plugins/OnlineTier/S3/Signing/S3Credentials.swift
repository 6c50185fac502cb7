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

    var description: String { "access key \(accessKeyID)" }
}
