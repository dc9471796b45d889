"""The bundled examples (package data): generator specs, trial designs, credibility plans and
studies on real data. ``insilico example NAME --out DIR`` writes one out."""
