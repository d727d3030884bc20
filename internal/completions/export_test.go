package completions

// Keys of owner's completion id, for tests that read the bucket directly.
var (
	RecordKey   = recordKey
	MessagesKey = messagesKey
	IndexKey    = indexKey
)
