"""What the tools say: typed results (`results`), the sentence read to a caller (`say`) and times in words
(`spoken`). Imports only the domain leaves."""
