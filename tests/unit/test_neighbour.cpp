// Tests: see the file header once written.
