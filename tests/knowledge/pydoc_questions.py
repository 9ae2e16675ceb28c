"""Retrieval-quality questions over CPython's language-reference help topics.

Corpus: ``pydoc_data.topics.topics``, which ships with CPython (79 topics in
Python 3.11): a dict mapping a topic name (e.g. ``"break"``, ``"typesseq"``)
to the plain-text help page that ``help("...")`` shows.  The knowledge-base
test loads one document per topic, titled by its key, and checks that the
expected topic's document is among the top retrieved chunks.

Rules the questions follow:

* Written in plain words, the way a user would ask, not copied phrases from
  the topic text.
* The answer lies in that one topic (each was checked against the topic's
  text).  Topics whose text is largely a copy of another topic (e.g. "if",
  "for", "try", "with", "class" inside "compound"; "customization" and
  "context-managers" inside "specialnames"; "in" inside "comparisons";
  "augassign" inside "assignment") are not used as answers, and questions
  that another topic answers just as well were avoided.
* A spread of topics: statements, operators, literals, data model, built-in
  types, exceptions, tooling; at most one question per topic.
"""

QUESTIONS: list[tuple[str, str]] = [
    # simple statements
    ("How do I make a loop stop early?", "break"),
    ("What do I write in a function body that should do nothing for now?", "pass"),
    ("How can I add sanity checks that are skipped when Python runs with optimizations turned on?", "assert"),
    ("How do I remove a variable so that the name is no longer defined?", "del"),
    ("If code I run with exec() declares a name global, does that affect the function that called exec()?", "global"),
    ("What happens to the value I give back when a generator function finishes?", "return"),
    ("How do I throw a new error while keeping the original error attached as its cause?", "raise"),
    ("How do I import a sibling module from the same package without spelling out the package name?", "import"),
    ("How can I unpack a list into a few variables and collect whatever is left over into one of them?", "assignment"),
    # expressions and operators
    ("How do I write a small anonymous function inline?", "lambda"),
    ("If the same key appears twice when I write out a dictionary with curly braces, which value is kept?", "dict"),
    ("Can I use `or` to fall back to a default value when a string is empty?", "booleans"),
    ("Can I check that a value lies between two others in one expression, like in maths?", "comparisons"),
    ("Why does minus one squared come out negative when I don't use parentheses?", "power"),
    ("What sign does the remainder have when dividing by a negative number?", "binary"),
    ("How do I multiply an integer by a power of two by moving its bits?", "shifting"),
    ("How do I compute the exclusive or of two integers?", "bitwise"),
    ("What does the tilde operator do to an integer?", "unary"),
    ("When I add an int and a float together, what type is the result?", "conversions"),
    ("Which binds tighter, `not`, `and` or `or`? Is there a table of operator priorities?", "operator-summary"),
    ("How are arguments from a dictionary passed as keyword arguments when calling a function?", "calls"),
    # literals and names
    ("How do I write a number in hexadecimal or binary directly in my code?", "integers"),
    ("How do I type a very small float using exponent notation?", "floating"),
    ("Is a negative number like -5 a single literal or an operator applied to a number?", "numbers"),
    ("How do I write a string where backslashes are kept as-is, for example a Windows path or a regex?", "strings"),
    ("Which words are reserved by the language and can't be used as variable names?", "identifiers"),
    (
        "Inside a class, what name does Python actually give to an attribute that starts with two underscores?",
        "atom-identifiers",
    ),
    # data model and built-in types
    ("What does the number returned by id() actually represent?", "objects"),
    ("How do I find all the classes that directly inherit from a given class?", "specialattrs"),
    ("Why can't I set an attribute on a bound method, and how do I work around it?", "typesmethods"),
    ("Does Python have single-precision floats?", "types"),
    ("How do I sort a list in place from largest to smallest?", "typesseq"),
    ("How do I look up a dictionary key and get a fallback instead of an error when it's missing?", "typesmapping"),
    ("How do I cut a known prefix off the start of a string?", "string-methods"),
    ("How do I format a number with commas separating the thousands?", "formatstrings"),
    # tooling
    ("How do I pause my program at a certain line and step through it?", "debugger"),
]
