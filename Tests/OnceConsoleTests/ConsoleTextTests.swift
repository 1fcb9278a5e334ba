@testable import OnceConsole
import Testing

@Suite("Console text helpers")
struct ConsoleTextTests {
    @Test("markup characters are escaped in content and attributes")
    func escaping() {
        #expect(esc("<a href=\"x\">&'</a>") == "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;")
        #expect(esc("plain topic.name-1") == "plain topic.name-1")
    }

    @Test("query components keep only unreserved characters")
    func queryComponents() {
        #expect(queryEscape("a b&c=d/é") == "a%20b%26c%3Dd%2F%C3%A9")
        #expect(queryEscape("topic-1_x.y~") == "topic-1_x.y~")
    }

    @Test("durations read as people say them")
    func durations() {
        #expect(humanDuration(ms: 850) == "850 ms")
        #expect(humanDuration(ms: 12_345) == "12.3 s")
        #expect(humanDuration(ms: 245_000) == "4 min 5 s")
        #expect(humanDuration(ms: 7_380_000) == "2 h 3 min")
        #expect(humanDuration(ms: 273_600_000) == "3 d 4 h")
    }

    @Test("the lag chart needs two samples and scales the largest lag to the top")
    func lagChart() {
        #expect(ConsoleCharts.lagChart([LagHistory.Sample(atMs: 0, totalLag: 5)]).contains("not enough samples"))
        let svg = ConsoleCharts.lagChart([LagHistory.Sample(atMs: 0, totalLag: 0), LagHistory.Sample(atMs: 1000, totalLag: 10)])
        #expect(svg.contains("points=\"6,114 474,6\""))
        #expect(svg.contains("max 10"))
    }
}
