"""Forms: templates of named digit fields, pages aligned to them, fields cut out for reading, rules checked."""
