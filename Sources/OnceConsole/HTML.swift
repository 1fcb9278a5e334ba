/// Text made safe for HTML element content and attribute values (double-quoted).
func esc(_ value: some CustomStringConvertible) -> String {
    var out = ""
    for c in value.description.unicodeScalars {
        switch c {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&quot;"
        case "'": out += "&#39;"
        default: out.unicodeScalars.append(c)
        }
    }
    return out
}

/// A query-string component: everything but unreserved characters percent-encoded.
func queryEscape(_ value: some CustomStringConvertible) -> String {
    var out = ""
    for byte in value.description.utf8 {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
            UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "~"):
            out.unicodeScalars.append(Unicode.Scalar(byte))
        default:
            let hex = String(byte, radix: 16, uppercase: true)
            out += "%" + (hex.count == 1 ? "0" + hex : hex)
        }
    }
    return out
}

/// A duration for people: "850 ms", "12.3 s", "4 min 5 s", "2 h 3 min", "3 d 4 h".
func humanDuration(ms: Int64) -> String {
    if ms < 1000 { return "\(ms) ms" }
    let seconds = ms / 1000
    if seconds < 60 { return "\(seconds).\((ms % 1000) / 100) s" }
    if seconds < 3600 { return "\(seconds / 60) min \(seconds % 60) s" }
    if seconds < 86_400 { return "\(seconds / 3600) h \((seconds % 3600) / 60) min" }
    return "\(seconds / 86_400) d \((seconds % 86_400) / 3600) h"
}

/// Every page's frame: one inline stylesheet, a navigation bar, no external assets (an operator's
/// browser may reach nothing but the broker).
func page(title: String, active: String, refreshSeconds: Int? = 10, body: String) -> String {
    let nav = [("/", "Health"), ("/topics", "Topics"), ("/transactions", "Transactions"), ("/groups", "Groups")]
        .map { path, name in "<a href=\"\(path)\"\(name == active ? " class=\"active\"" : "")>\(name)</a>" }
        .joined(separator: " ")
    let refresh = refreshSeconds.map { "<meta http-equiv=\"refresh\" content=\"\($0)\">" } ?? ""
    return """
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8">\(refresh)
        <title>\(esc(title)) · once console</title>
        <style>
        body{font:14px system-ui,sans-serif;margin:0;color:#1d232a;background:#f6f7f9}
        header{background:#1d232a;color:#fff;padding:8px 16px}
        header a{color:#cfd6de;margin-right:14px;text-decoration:none}
        header a.active{color:#fff;font-weight:600}
        main{padding:12px 16px}
        table{border-collapse:collapse;background:#fff;margin:8px 0 16px}
        th,td{border:1px solid #d8dde3;padding:3px 8px;text-align:left;vertical-align:top}
        td.num{text-align:right;font-variant-numeric:tabular-nums}
        tr.holding td,tr.hanging td{background:#fde8e8}
        .muted{color:#6b7580}
        .err{color:#b42318;font-weight:600}
        .ok{color:#067647;font-weight:600}
        button{padding:3px 10px}
        </style></head>
        <body><header><strong>once</strong> &nbsp; \(nav)</header>
        <main><h1>\(esc(title))</h1>
        \(body)
        </main></body></html>
        """
}
