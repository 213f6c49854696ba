"""Message texts for the simulated traffic, written for this simulator.

Texts are grouped by the stage of a conversation (a plain request, mild annoyance,
anger, a threat to leave, ...) and by topic. ``{thing}``, ``{issue}`` and ``{ref}`` are
filled from the topic so that one template serves every queue. Channel styling (e-mail
greetings, voice-transcript fillers, social handles) is applied afterwards by
``traffic.py``; the texts here are written as a customer would type them in a chat.
"""

from __future__ import annotations

# Each topic is a queue and the skill its conversations need.
TOPICS: dict[str, dict[str, list[str]]] = {
    "billing": {
        "thing": ["my last invoice", "the charge on my card", "my monthly bill", "the direct debit"],
        "issue": [
            "I was charged twice this month",
            "my invoice has a fee I don't recognise",
            "the discount I was promised is not on the bill",
            "you took the payment even though I paid by bank transfer",
            "the bill is almost double what it normally is",
        ],
        "subject": ["Question about my invoice", "Double charge", "Billing query", "Refund"],
    },
    "technical": {
        "thing": ["my internet connection", "the router", "my broadband", "the TV box"],
        "issue": [
            "the internet keeps dropping every evening",
            "the router light is blinking red since this morning",
            "the speed is a fraction of what I pay for",
            "the TV box says no signal on every channel",
            "wifi disconnects whenever someone makes a call",
        ],
        "subject": ["Connection drops", "No internet", "Slow broadband", "Router fault"],
    },
    "orders": {
        "thing": ["my order", "the parcel", "my delivery", "the replacement phone"],
        "issue": [
            "my order hasn't arrived and tracking hasn't moved in four days",
            "I received the wrong size",
            "the parcel was marked delivered but nothing is here",
            "the phone arrived with a cracked screen",
            "the delivery slot was missed twice",
        ],
        "subject": ["Where is my order", "Wrong item", "Missing parcel", "Damaged delivery"],
    },
    "account": {
        "thing": ["my account", "my login", "the password reset", "my contract"],
        "issue": [
            "I can't log in and the reset email never arrives",
            "I'd like to change the email address on my account",
            "my account was locked after the app update",
            "someone changed my contact details and it wasn't me",
            "I need to add my partner as an authorised user",
        ],
        "subject": ["Login problem", "Account locked", "Change of details", "Account access"],
    },
}

# Conversations that ask for something and stay calm.
OPENING = [
    "Hi, could you help me with {thing}?",
    "Hello, I have a question about {thing}.",
    "Hi there, {issue}. Can you have a look?",
    "Good morning, {issue}.",
    "Hey, quick one: {issue}, what should I do?",
]
DETAIL = [
    "The reference is {ref}.",
    "Sure, the account number ends in {digits}.",
    "It started on {day}.",
    "I already restarted everything, same result.",
    "Ok, I'll wait.",
    "Yes, that's the one.",
    "I'm on the app, version from last week.",
]
# Calm messages that contain words a keyword filter would trip on.
CALM_TRICKY = [
    "No problem at all, I just want to cancel my order for the blue one and keep the red.",
    "I got an error code on the router earlier but it works now, just curious what it means.",
    "Not urgent, there's no problem with the service, I only want a copy of the invoice.",
    "I'd like to cancel the paper bill and get it by email instead, thanks.",
    "Nothing is wrong, I just want to check when my contract ends.",
]
THANKS = [
    "Great, thanks for your help!",
    "Perfect, have a nice day.",
    "That's all, thank you.",
    "Brilliant, that worked. Thanks!",
    "Thanks a lot, really appreciate it.",
]

# Escalation, in order of rising stress.
MILD = [
    "Still waiting here...",
    "Is anyone there?",
    "This is a bit annoying honestly, it happened last month too.",
    "Any update? I've been on this for a while.",
    "Hmm, that's not really what I asked.",
]
ANNOYED = [
    "I've been waiting for over twenty minutes now and nobody has helped me.",
    "Why is this so difficult? I just want {thing} sorted.",
    "Honestly this is getting really frustrating.",
    "Your bot keeps sending me the same useless link.",
    "I'm not happy with this at all, {issue} and nobody cares.",
]
ANGRY = [
    "This is ridiculous. I pay every month for a service I don't get.",
    "Absolutely unacceptable. You took my money and did nothing.",
    "I am furious. Nobody here seems to know what they're doing.",
    "Worst customer service I've ever dealt with, and I've dealt with a lot.",
    "Stop sending me scripts and FIX IT. I've had enough.",
]
THREAT = [
    "If this isn't fixed today I'm cancelling my account.",
    "Cancel my account. I'm done with you people.",
    "I'll be filing a chargeback with my bank tomorrow.",
    "I'm taking this to the ombudsman and I'll be speaking to a lawyer.",
    "I'm switching provider this week unless someone fixes this now.",
    "I want to make a formal complaint about how I've been treated.",
]
# Worried rather than angry, with real stakes.
ANXIOUS = [
    "Please, I really need this fixed today, my rent is due and you charged me twice.",
    "I'm really worried, my mother relies on this line for her medical alarm.",
    "I'm scared I'll lose access before my exam tomorrow, please help.",
    "I can't afford this, the overdraft fees are already piling up.",
    "I work from home and I'll lose my job if I can't get online by Monday.",
]
# Repeat contact: the customer has been here before about the same thing.
REPEAT = [
    "This is the third time I'm writing about this.",
    "I already called twice last week and was promised a callback that never came.",
    "Same problem again, I explained all of this to your colleague yesterday.",
    "I've contacted you four times now and every time I have to start from zero.",
    "Last time I was told it was fixed. It isn't.",
]
# After a helpful agent joins.
CALMING = [
    "Ok, thank you, that's a relief.",
    "Alright, thanks for actually listening.",
    "Fine, that helps. Sorry for being short earlier.",
    "Ok that sounds reasonable, thank you.",
    "Thanks, I appreciate you sorting it out so quickly.",
]
# The agent joined but the customer is still upset.
STILL_UPSET = [
    "I've heard that before.",
    "That's not good enough, I want it fixed today.",
    "Why did it take this long to get a real person?",
    "I don't want an apology, I want my money back.",
]
RESIGNED = [
    "Fine. Just cancel it then.",
    "Whatever. I'll be looking at other providers.",
    "Ok, but if it happens again I'm gone.",
]

AGENT_GREETING = [
    "Hi, I'm taking over your conversation now. I've read through everything.",
    "Hello, thanks for waiting. I'll sort this out with you.",
    "Hi, sorry for the wait. I can see what happened and I'm on it.",
]
AGENT_EMPATHY = [
    "I'm really sorry about this, I'd be frustrated too.",
    "I understand, and I'm sorry it took several contacts to get here.",
    "You're right, that shouldn't have happened.",
]
AGENT_RESOLUTION = {
    "billing": [
        "I've refunded the duplicate charge; you'll see it in 3 to 5 working days.",
        "I've corrected the invoice and applied the discount from this month.",
    ],
    "technical": [
        "I've reset the line from our side and booked an engineer for tomorrow morning.",
        "There was a fault at the exchange; it's fixed now, please restart the router.",
    ],
    "orders": [
        "I've sent a replacement by express delivery, it arrives tomorrow.",
        "I've opened a claim with the courier and refunded you in full today.",
    ],
    "account": [
        "I've unlocked the account and sent a new reset link, valid for an hour.",
        "I've secured the account and changed the details back; please set a new password.",
    ],
}
AGENT_CLOSING = [
    "Is there anything else I can help with?",
    "Thanks for your patience today.",
]
BOT_GREETING = [
    "Thanks for contacting us! An agent will be with you shortly.",
    "Hi! I'm the virtual assistant. I'm finding the right person for you.",
]
BOT_WAIT = [
    "Thanks for waiting, you are next in the queue.",
    "All our agents are busy, your estimated wait is {minutes} minutes.",
]

# A few conversations in other languages, stage by stage (no topic slots).
OTHER_LANGUAGES: dict[str, dict[str, list[str]]] = {
    "de": {
        "opening": ["Hallo, ich habe eine Frage zu meiner Rechnung.", "Guten Tag, mein Internet geht nicht."],
        "detail": ["Die Kundennummer endet auf {digits}.", "Seit Montag."],
        "annoyed": ["Ich warte jetzt schon seit zwanzig Minuten.", "Das ist wirklich ärgerlich."],
        "angry": ["Das ist eine Frechheit, niemand hilft mir!", "Ich kündige, wenn das heute nicht klappt."],
        "thanks": ["Danke, das hat geholfen.", "Vielen Dank, schönen Tag noch."],
    },
    "es": {
        "opening": ["Hola, tengo un problema con mi factura.", "Buenos días, no tengo internet desde ayer."],
        "detail": ["El número de cliente termina en {digits}.", "Desde el lunes."],
        "annoyed": ["Llevo veinte minutos esperando.", "Esto es muy molesto."],
        "angry": ["¡Es una vergüenza, nadie me ayuda!", "Voy a cancelar mi cuenta si no lo arreglan hoy."],
        "thanks": ["Gracias, ya funciona.", "Muchas gracias por la ayuda."],
    },
}

# Voice transcripts: fillers and the kind of words speech-to-text gets wrong.
VOICE_FILLERS = ["um", "uh", "you know", "like", "so", "yeah", "i mean"]
VOICE_MISHEARD = {
    "account": "a count",
    "router": "rooter",
    "invoice": "in voice",
    "broadband": "broad band",
    "parcel": "parsel",
    "ombudsman": "om buds man",
    "refund": "re fund",
}
SOCIAL_HANDLE = "@acme_help"
SOCIAL_TAGS_UPSET = ["#fail", "#customerservice", "#neveragain", "🙄", "😡"]
SOCIAL_TAGS_CALM = ["🙏", "thx", "#help"]
EMAIL_GREETING = ["Hello,", "Dear support team,", "Hi,", "To whom it may concern,"]
EMAIL_SIGNOFF = ["Regards", "Kind regards", "Thanks", "Best"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "the weekend"]
