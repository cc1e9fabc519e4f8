package dtp

import "crypto/tls"

// PresentNoCertificate makes c send an empty certificate in the handshake,
// as a client without one does. Only tests can build such a client: New
// refuses a configuration without a certificate.
func PresentNoCertificate(c *Client) { c.pair.cur.Store(&tls.Certificate{}) }
