// Package refbridge holds the domain of the bridge between UNICEF's Primero
// (CPIMS+) and UNHCR's proGres v4 reached through DTP: the messages both peers
// exchange, the application error type and the small interfaces the rest of
// the program depends on. It imports none of its sub-packages.
//
// Wire types carry JSON tags that match the peers' field names exactly
// (see ../shared/contracts), misspellings included, so that a value decoded
// from a peer and encoded again is the same message.
package refbridge
