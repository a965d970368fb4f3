// Command receiver verifies webhookd deliveries with Go's standard library
// only: the Standard Webhooks signature (`webhook-signature: v1,<base64>`) and
// the timestamp tolerance.
//
//	WEBHOOK_SECRET=whsec_... PORT=8000 go run .
//
// Answers 204 to a valid request and 401 to any other, and appends one JSON
// line per request to $RECEIVED_LOG (stdout when unset).
package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Tolerance is how far webhook-timestamp may be from our clock, either way.
const Tolerance = 5 * time.Minute

// SigningKey is the HMAC key of a secret: a generated `whsec_...` secret's
// base64 part, decoded; a secret you chose yourself, as its raw bytes.
func SigningKey(secret string) []byte {
	if strings.HasPrefix(secret, "whsec_") {
		key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
		if err == nil && len(key) > 0 {
			return key
		}
	}
	return []byte(secret)
}

// Verify checks the signature over "{webhook-id}.{webhook-timestamp}.{body}"
// and that the timestamp is within Tolerance of now.
func Verify(key []byte, header http.Header, body []byte, now time.Time) error {
	id, timestamp := header.Get("webhook-id"), header.Get("webhook-timestamp")
	if id == "" || timestamp == "" {
		return errors.New("missing webhook-id or webhook-timestamp")
	}
	seconds, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return errors.New("webhook-timestamp is not a number")
	}
	if age := now.Sub(time.Unix(seconds, 0)); age > Tolerance || age < -Tolerance {
		return errors.New("webhook-timestamp is too far from now")
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + timestamp + "."))
	mac.Write(body)
	expected := mac.Sum(nil)
	// Several space-separated entries during a key rotation: any v1 one may match.
	for _, entry := range strings.Fields(header.Get("webhook-signature")) {
		version, signature, _ := strings.Cut(entry, ",")
		got, err := base64.StdEncoding.DecodeString(signature)
		if version == "v1" && err == nil && hmac.Equal(got, expected) {
			return nil
		}
	}
	return errors.New("no matching signature")
}

func main() {
	secret := os.Getenv("WEBHOOK_SECRET")
	if secret == "" {
		log.Fatal("WEBHOOK_SECRET is not set")
	}
	key := SigningKey(secret)
	port := os.Getenv("PORT")
	if port == "" {
		port = "8000"
	}
	out := os.Stdout
	if path := os.Getenv("RECEIVED_LOG"); path != "" {
		file, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			log.Fatal(err)
		}
		out = file
	}
	var mu sync.Mutex // one line at a time from concurrent requests

	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		// The raw bytes as sent: a re-encoded JSON object would not match.
		body, err := io.ReadAll(io.LimitReader(r.Body, 10<<20))
		if err == nil {
			err = Verify(key, r.Header, body, time.Now())
		}
		line := map[string]any{"valid": err == nil, "webhook_id": r.Header.Get("webhook-id")}
		if err == nil {
			var event struct{ ID string }
			_ = json.Unmarshal(body, &event) // verified bytes from webhookd: an envelope
			line["event_id"] = event.ID
		} else {
			line["error"] = err.Error()
		}
		mu.Lock()
		_ = json.NewEncoder(out).Encode(line)
		mu.Unlock()
		// Acting on the event goes here, once per webhook-id (deliveries can repeat).
		if err != nil {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	log.Fatal(http.ListenAndServe("127.0.0.1:"+port, nil))
}
