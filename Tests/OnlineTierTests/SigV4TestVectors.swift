/// AWS's SigV4 test suite as published in awslabs/aws-c-auth,
/// `tests/aws-signing-test-suite/v4/<name>/header-signed-request.txt`: each request as the
/// suite gives it (before signing) and the Authorization header the suite expects. Facts from a
/// public specification, embedded as data.
///
/// Every case that applies to S3 is here. Left out, because S3 signs paths as they are and the
/// suite expects them normalised: get-relative-normalized, get-relative-relative-normalized,
/// get-slash-dot-slash-normalized, get-slash-normalized, get-slash-pointless-dot-normalized,
/// get-slashes-normalized and get-space-normalized. The `*-unnormalized` twins of those are in.
/// The `query-*` files sign into the query string (presigned URLs), which this client does not do.
/// Context of every case: access key AKIDEXAMPLE, secret wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY,
/// region us-east-1, service "service", time 2015-08-30T12:36:00Z; two cases add a session token.
enum SigV4TestVectors {
    struct Case {
        var name: String
        /// The request line, headers (a line starting with white space continues the previous
        /// header with another value), an empty line and the body.
        var request: String
        var authorization: String
        /// Whether the payload hash is UNSIGNED-PAYLOAD rather than the body's SHA-256.
        var unsignedPayload = false
        var sessionToken: String?
    }

    static let accessKey = "AKIDEXAMPLE"
    static let secretKey = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
    static let credentialPrefix = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
    static let stsToken = "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA=="

    private static func auth(_ signedHeaders: String, _ signature: String) -> String {
        credentialPrefix + "SignedHeaders=\(signedHeaders), Signature=\(signature)"
    }

    private static let plain = "Host:example.amazonaws.com\nX-Amz-Date:20150830T123600Z\n"

    static let cases: [Case] = [
        Case(name: "get-vanilla", request: "GET / HTTP/1.1\n" + plain,
             authorization: auth("host;x-amz-date", "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31")),
        Case(name: "get-header-key-duplicate",
             request: "GET / HTTP/1.1\nHost:example.amazonaws.com\nMy-Header1:value2\nMy-Header1:value2\nMy-Header1:value1\nX-Amz-Date:20150830T123600Z\n",
             authorization: auth("host;my-header1;x-amz-date", "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea")),
        Case(name: "get-header-value-multiline",
             request: "GET / HTTP/1.1\nHost:example.amazonaws.com\nMy-Header1:value1\n  value2\n     value3\nX-Amz-Date:20150830T123600Z\n",
             authorization: auth("host;my-header1;x-amz-date", "ba17b383a53190154eb5fa66a1b836cc297cc0a3d70a5d00705980573d8ff790")),
        Case(name: "get-header-value-order",
             request: "GET / HTTP/1.1\nHost:example.amazonaws.com\nMy-Header1:value4\nMy-Header1:value1\nMy-Header1:value3\nMy-Header1:value2\nX-Amz-Date:20150830T123600Z\n",
             authorization: auth("host;my-header1;x-amz-date", "08c7e5a9acfcfeb3ab6b2185e75ce8b1deb5e634ec47601a50643f830c755c01")),
        Case(name: "get-header-value-trim",
             request: "GET / HTTP/1.1\nHost:example.amazonaws.com\nMy-Header1: value1\nMy-Header2: \"a   b   c\"\nX-Amz-Date:20150830T123600Z\n",
             authorization: auth("host;my-header1;my-header2;x-amz-date", "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736")),
        Case(name: "get-relative-unnormalized", request: "GET /example/.. HTTP/1.1\n" + plain,
             authorization: auth("host;x-amz-date", "eca7ead57bb5aa5c8e28007acd4ff04e1ff9a0ff3b237ec1554a184887ff9282")),
        Case(name: "get-relative-relative-unnormalized", request: "GET /example1/example2/../.. HTTP/1.1\n" + plain,
             authorization: auth("host;x-amz-date", "dc33e0856fd4baca4d7aa2146c38958283844764f38c74252a333df5e613003b")),
        Case(name: "get-slash-dot-slash-unnormalized", request: "GET /./ HTTP/1.1\n" + plain,
             authorization: auth("host;x-amz-date", "68714168e6557f8f2de0ef956fc24dc2593a4bd2961f8df51898d8a134695145")),
        Case(name: "get-slash-pointless-dot-unnormalized", request: "GET /./example HTTP/1.1\n" + plain,
             authorization: auth("host;x-amz-date", "beb03f223f7deae4146464f06e29eebbee9c8afbe15c290cf07aa8b119e14cff")),
        Case(name: "get-slash-unnormalized", request: "GET // HTTP/1.1\n" + plain,
             authorization: auth("host;x-amz-date", "c88bcd3d312d75078c0cd961d6deae3f4c754924b01669efcfcb439fd5e5b76e")),
        Case(name: "get-slashes-unnormalized", request: "GET //example// HTTP/1.1\n" + plain,
             authorization: auth("host;x-amz-date", "87cca117541a147f6df867677d98a7d80dff226d2bfca9e4ffa899665623c7e5")),
        Case(name: "get-space-unnormalized", request: "GET /example space/ HTTP/1.1\n" + plain,
             authorization: auth("host;x-amz-date", "652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741")),
        Case(name: "get-unreserved", request: "GET /-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz HTTP/1.1\n" + plain,
             authorization: auth("host;x-amz-date", "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f")),
        Case(name: "get-utf8", request: "GET /ሴ HTTP/1.1\n" + plain,
             authorization: auth("host;x-amz-date", "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85")),
        Case(name: "get-vanilla-empty-query-key", request: "GET /?Param1=value1 HTTP/1.1\n" + plain,
             authorization: auth("host;x-amz-date", "a67d582fa61cc504c4bae71f336f98b97f1ea3c7a6bfe1b6e45aec72011b9aeb")),
        Case(name: "get-vanilla-query", request: "GET / HTTP/1.1\n" + plain,
             authorization: auth("host;x-amz-date", "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31")),
        Case(name: "get-vanilla-query-order-encoded", request: "GET /?Param-3=Value3&Param=Value2&%E1%88%B4=Value1 HTTP/1.1\n" + plain,
             authorization: auth("host;x-amz-date", "371d3713e185cc334048618a97f809c9ffe339c62934c032af5a0e595648fcac")),
        Case(name: "get-vanilla-query-order-key-case", request: "GET /?Param2=value2&Param1=value1 HTTP/1.1\n" + plain,
             authorization: auth("host;x-amz-date", "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500")),
        Case(name: "get-vanilla-query-unreserved",
             request: "GET /?-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz=-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz HTTP/1.1\n" + plain,
             authorization: auth("host;x-amz-date", "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197")),
        Case(name: "get-vanilla-utf8-query", request: "GET /?ሴ=bar HTTP/1.1\n" + plain,
             authorization: auth("host;x-amz-date", "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04")),
        Case(name: "get-vanilla-with-session-token", request: "GET / HTTP/1.1\n" + plain,
             authorization: auth("host;x-amz-date;x-amz-security-token", "07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8"),
             sessionToken: "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267"),
        Case(name: "post-vanilla", request: "POST / HTTP/1.1\n" + plain,
             authorization: auth("host;x-amz-date", "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b")),
        Case(name: "post-vanilla-query", request: "POST /?Param1=value1 HTTP/1.1\n" + plain,
             authorization: auth("host;x-amz-date", "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11")),
        Case(name: "post-header-key-sort", request: "POST / HTTP/1.1\nHost:example.amazonaws.com\nMy-Header1:value1\nX-Amz-Date:20150830T123600Z\n",
             authorization: auth("host;my-header1;x-amz-date", "c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c")),
        Case(name: "post-header-value-case", request: "POST / HTTP/1.1\nHost:example.amazonaws.com\nMy-Header1:VALUE1\nX-Amz-Date:20150830T123600Z\n",
             authorization: auth("host;my-header1;x-amz-date", "cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d")),
        // The token is added after signing, so the signature is post-vanilla's.
        Case(name: "post-sts-header-after", request: "POST / HTTP/1.1\n" + plain,
             authorization: auth("host;x-amz-date", "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b")),
        Case(name: "post-sts-header-before",
             request: "POST / HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Security-Token:\(stsToken)\nX-Amz-Date:20150830T123600Z\n",
             authorization: auth("host;x-amz-date;x-amz-security-token", "85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead")),
        Case(name: "post-x-www-form-urlencoded",
             request: "POST / HTTP/1.1\nContent-Type:application/x-www-form-urlencoded\nHost:example.amazonaws.com\nContent-Length:13\n"
                 + "x-amz-content-sha256:9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e\nX-Amz-Date:20150830T123600Z\n\nParam1=value1",
             authorization: auth("content-length;content-type;host;x-amz-content-sha256;x-amz-date",
                                 "d3875051da38690788ef43de4db0d8f280229d82040bfac253562e56c3f20e0b")),
        Case(name: "post-x-www-form-urlencoded-parameters",
             request: "POST / HTTP/1.1\nContent-Type:application/x-www-form-urlencoded; charset=utf-8\nHost:example.amazonaws.com\nContent-Length:13\n"
                 + "x-amz-content-sha256:9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e\nX-Amz-Date:20150830T123600Z\n\nParam1=value1",
             authorization: auth("content-length;content-type;host;x-amz-content-sha256;x-amz-date",
                                 "328d1b9eaadca9f5818ef05e8392801e091653bafec24fcab71e7344e7f51422")),
        Case(name: "post-unsigned-payload",
             request: "POST / HTTP/1.1\nHost:example.amazonaws.com\nContent-Length:13\nX-Amz-Date:20150830T123600Z\nx-amz-content-sha256:UNSIGNED-PAYLOAD\n\nParam1=value1\n",
             authorization: auth("content-length;host;x-amz-content-sha256;x-amz-date",
                                 "9fb60e8938d2178a7d63b49e055d1e65d8f6226f38846e8e0293bf43ce29050c"),
             unsignedPayload: true),
    ]
}
