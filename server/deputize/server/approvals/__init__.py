"""A person in the loop: supervised actions wait for the person's approval (OpenID CIBA Core
1.0, poll mode).  ``asking`` takes an agent's request, ``answers`` records the person's (or an
operator's) answer, ``words`` says in plain words who asks for what."""
