package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// bcryptCost makes a guess cost tens of milliseconds.
const bcryptCost = 11

// maxPasswordLen is bcrypt's limit; longer passwords are refused rather than truncated.
const maxPasswordLen = 72

func hashPassword(pw string) (string, error) {
	if len(pw) > maxPasswordLen {
		return "", fmt.Errorf("%w: password longer than %d bytes", ErrInvalid, maxPasswordLen)
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcryptCost)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return string(h), nil
}

// dummyHash is compared against when the user does not exist, so a wrong user name costs
// the same time as a wrong password.
var dummyHash, _ = bcrypt.GenerateFromPassword([]byte("no such user"), bcryptCost)

// passwordCache remembers recently verified passwords (as keyed MACs, never in clear) so
// clients that send Basic credentials on every registry request do not pay bcrypt each time.
type passwordCache struct {
	mu      sync.Mutex
	key     []byte
	entries map[string]cachedPassword
}

type cachedPassword struct {
	mac     []byte
	expires time.Time
}

const passwordCacheTTL = 2 * time.Minute

func newPasswordCache() *passwordCache {
	k := make([]byte, 32)
	rand.Read(k)
	return &passwordCache{key: k, entries: map[string]cachedPassword{}}
}

func (c *passwordCache) mac(userID, pw string) []byte {
	m := hmac.New(sha256.New, c.key)
	m.Write([]byte(userID))
	m.Write([]byte{0})
	m.Write([]byte(pw))
	return m.Sum(nil)
}

func (c *passwordCache) ok(userID, pw string, now time.Time) bool {
	c.mu.Lock()
	e, found := c.entries[userID]
	c.mu.Unlock()
	return found && now.Before(e.expires) && hmac.Equal(e.mac, c.mac(userID, pw))
}

func (c *passwordCache) remember(userID, pw string, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) > 10000 { // bounded: drop everything rather than grow
		c.entries = map[string]cachedPassword{}
	}
	c.entries[userID] = cachedPassword{mac: c.mac(userID, pw), expires: now.Add(passwordCacheTTL)}
}

func (c *passwordCache) forget(userID string) {
	c.mu.Lock()
	delete(c.entries, userID)
	c.mu.Unlock()
}

// Authenticate checks a user name and password. Every failure is ErrUnauthorized, whatever
// the reason, and takes about the same time.
func (id *Identity) Authenticate(ctx context.Context, name, password string) (User, error) {
	u, err := id.UserByName(ctx, name)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return User{}, err
	}
	if err == nil && u.Enabled && id.passwords.ok(u.ID, password, id.Now()) {
		return u, nil
	}
	hash := dummyHash
	if err == nil && u.PasswordHash != "" {
		hash = []byte(u.PasswordHash)
	}
	tooLong := len(password) > maxPasswordLen
	if tooLong {
		password = password[:maxPasswordLen] // refused below; still spend the time
	}
	cmpErr := bcrypt.CompareHashAndPassword(hash, []byte(password))
	if err != nil || cmpErr != nil || tooLong || !u.Enabled || u.PasswordHash == "" {
		return User{}, ErrUnauthorized
	}
	id.passwords.remember(u.ID, password, id.Now())
	return u, nil
}
