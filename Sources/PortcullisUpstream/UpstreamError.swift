internal import CPortcullisCurl

/// Why an upstream exchange failed, reduced to what the gateway answers with.
package struct UpstreamError: Error, Hashable, Sendable, CustomStringConvertible {
    package enum Kind: String, Hashable, Sendable {
        /// Refused, unresolvable, TLS failure, reset or closed before an answer: 502.
        case badGateway = "bad_gateway"
        /// The connect or whole-exchange timeout passed: 504.
        case timeout
        /// The client went away or the gateway cancelled the exchange.
        case cancelled
        /// The client's request body could not be sent (too large, or the client stopped).
        case requestBody = "request_body"
    }

    package var kind: Kind
    /// libcurl's result code, for the log.
    package var curlCode: Int
    package var message: String

    package init(kind: Kind, curlCode: Int, message: String) {
        self.kind = kind
        self.curlCode = curlCode
        self.message = message
    }

    /// The one place libcurl's result codes are mapped to gateway answers.
    init(curlCode code: CURLcode, cancelled: Bool) {
        let text = curl_easy_strerror(code).map { String(cString: $0) } ?? "curl error"
        let kind: Kind
        if cancelled {
            kind = .cancelled
        } else {
            switch code {
            case CURLE_OPERATION_TIMEDOUT: kind = .timeout
            case CURLE_ABORTED_BY_CALLBACK, CURLE_READ_ERROR: kind = .requestBody
            default: kind = .badGateway
            }
        }
        self.init(kind: kind, curlCode: Int(code.rawValue), message: text)
    }

    package var description: String { "\(self.kind.rawValue): \(self.message) (curl \(self.curlCode))" }
}
