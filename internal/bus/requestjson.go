package bus

import (
	"encoding/json"

	gojson "github.com/goccy/go-json"
)

// DecodeRequest reads a Request from its JSON message into r, which it
// overwrites. goccy/go-json reads it (a quarter of encoding/json's time on
// a chat's request, BenchmarkDecodeRequest); a message it refuses is read
// again by encoding/json, so the error a caller sees is encoding/json's.
// FuzzDecodeRequest holds the result to json.Unmarshal's.
func DecodeRequest(data []byte, r *Request) error {
	*r = Request{}
	if gojson.Unmarshal(data, r) == nil {
		return nil
	}
	*r = Request{}
	return json.Unmarshal(data, r)
}

// EncodeRequest returns r's JSON message, byte for byte what json.Marshal
// writes (FuzzDecodeRequest), written by goccy/go-json; a request it
// refuses (a NaN or infinite sampling value) is handed to json.Marshal for
// its error.
func EncodeRequest(r *Request) ([]byte, error) {
	if b, err := gojson.Marshal(r); err == nil {
		return b, nil
	}
	return json.Marshal(r)
}
