"""The supply chain of an image: its SBOM, provenance, the advisory database and the policy that
decides what passes."""
