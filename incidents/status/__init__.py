"""The public status page (C14): components, maintenance, the page, its feeds and its
Statuspage-compatible JSON API. Every incident it shows comes from
`incidents.selectors.public_incidents()`."""
