// Package deploy holds refbridge's deployment files — the example
// configuration, the systemd unit, the Grafana dashboard — and, in its
// tests, TestDockerfileImage, which executes the repository's Dockerfile
// without Docker: it runs the build stage's steps in a private mount
// namespace on this machine, assembles the final image's root filesystem,
// and runs `refbridge serve` chrooted into it as the image's user. It has
// no code of its own.
package deploy
