import KafkaProtocol
import OnceClient
import Testing

@Suite struct KafkaErrorTests {
    @Test func zeroIsNoError() {
        #expect(KafkaError(errorCode: 0) == nil)
    }

    @Test func namesTheCode() {
        let error = KafkaError(errorCode: 3)
        #expect(error?.name == "UNKNOWN_TOPIC_OR_PARTITION")
        #expect(error?.description == "UNKNOWN_TOPIC_OR_PARTITION (3)")
    }

    @Test func includesTheBrokerMessage() {
        let error = KafkaError(.topicAlreadyExists, message: "Topic 't' already exists.")
        #expect(error.description == "TOPIC_ALREADY_EXISTS (36): Topic 't' already exists.")
    }

    @Test func anUnknownCodeKeepsItsNumber() {
        #expect(KafkaError(errorCode: 999)?.description.contains("999") == true)
    }

    @Test func retriabilityFollowsTheJavaClient() {
        #expect(KafkaError(.notLeaderOrFollower).isRetriable)
        #expect(KafkaError(.unknownTopicOrPartition).isRetriable)
        #expect(!KafkaError(.topicAlreadyExists).isRetriable)
        #expect(!KafkaError(.offsetOutOfRange).isRetriable)
    }
}
