"""The demo's text material: the fictional people, places, questions, support,
spam and abuse the generator (:mod:`.generate`) draws from. Invented, every word."""

from __future__ import annotations

from typing import Final

# --- text -----------------------------------------------------------------------

QUESTIONS_EN: Final = (
    # school
    "What is school like in {camp}?",
    "What's your favourite subject at school and why?",
    "How many kids are in your class?",
    "Do girls and boys go to the same school in the camp?",
    "What do you want to study at university?",
    "Do you have enough books and teachers?",
    "How far do you walk to get to school every day?",
    # food
    "What do you usually eat for breakfast?",
    "What's your favourite food? Can you cook it in the camp?",
    "Is there a dish from home you wish you could eat again?",
    "How do you get food each week? Is it enough?",
    # family
    "Are you in the camp with your family?",
    "What does your family do together in the evenings?",
    "Do you have brothers and sisters? What are they like?",
    "How do you stay in touch with family who are far away?",
    # dreams
    "What is your biggest dream?",
    "Where do you see yourself in ten years?",
    "If you could go anywhere in the world, where would you go?",
    "What job would you like to do when you grow up?",
    # football
    "Do you play football in {camp}? Who is the best player on your team?",
    "Who is your favourite football player?",
    "Did you watch the World Cup? Who were you supporting?",
    "Is there a football league in the camp?",
    # music
    "What music do you listen to?",
    "Who is your favourite singer right now?",
    "Do you play an instrument? Could you teach us a song?",
    "What songs remind you of home?",
    # what they miss
    "What do you miss most about home?",
    "What's one thing from home you'd love to have with you now?",
    "What do you remember about the place you grew up?",
    # how to help
    "How can people like me help from far away?",
    "What do you need most right now?",
    "Is donating money the best way to help, or is there something better?",
    "What should people in {country} understand about life in a refugee camp?",
    # daily life
    "What does a normal day look like for you in {camp}?",
    "What do you do for fun at the weekend?",
    "Is it very hot in {camp}? How do you stay cool?",
    "Do you have internet or phones in the camp?",
    "How do you celebrate Eid or Christmas in the camp?",
    "What languages do you speak?",
    "Who is your best friend and how did you meet?",
    "What makes you laugh?",
    "What is the hardest part of living in {camp}?",
    "What would you like the world to know about refugees?",
)

QUESTIONS_OTHER: Final[dict[str, tuple[str, ...]]] = {
    "fr": (
        "Qu'est-ce qui te manque le plus de ton pays ?",
        "Comment se passe l'école à {camp} ?",
        "Quel est ton plat préféré ?",
        "Tu rêves de faire quoi plus tard ?",
        "Comment peut-on vous aider depuis la France ?",
        "Vous jouez au foot ? C'est quoi ton équipe préférée ?",
        "Quelle musique écoutez-vous au camp ?",
        "Qu'est-ce qui te fait sourire le matin ?",
    ),
    "es": (
        "¿Qué es lo que más echas de menos de tu casa?",
        "¿Cómo es un día normal en {camp}?",
        "¿Qué quieres ser de mayor?",
        "¿Cómo podemos ayudaros desde España?",
        "¿Cuál es tu comida favorita?",
        "¿Qué música os gusta escuchar?",
        "¿Juegas al fútbol? ¿Cuál es tu equipo favorito?",
    ),
    "de": (
        "Was vermisst du am meisten an deiner Heimat?",
        "Wie sieht ein normaler Schultag in {camp} aus?",
        "Was ist dein größter Traum?",
        "Wie können wir euch von Deutschland aus helfen?",
        "Spielt ihr Fußball? Wer ist euer Lieblingsspieler?",
        "Welche Musik hört ihr gerne?",
    ),
    "sw": (
        "Unakosa nini zaidi kutoka nyumbani?",
        "Shule iko aje huko {camp}?",
        "Ndoto yako kubwa ni nini?",
        "Tunawezaje kuwasaidia?",
        "Chakula unachopenda zaidi ni kipi?",
        "Mnacheza mpira? Timu yako unayoipenda ni ipi?",
    ),
    "ar": (
        "ما هو أكثر شيء تشتاق إليه في وطنك؟",
        "كيف هي الدراسة في مخيم {camp}؟",
        "ما هو حلمك في المستقبل؟",
        "كيف يمكننا مساعدتكم؟",
        "ما هي أكلتك المفضلة؟",
        "هل تلعبون كرة القدم؟ من هو لاعبك المفضل؟",
    ),
    "so": (
        "Maxaad aad u xiisaysaa oo dalkaaga ah?",
        "Waxbarashadu sidee bay tahay {camp}?",
        "Riyadaadu waa maxay?",
        "Sidee baan idiin caawin karnaa?",
        "Cuntada aad ugu jeceshahay waa tee?",
        "Kubadda cagta ma ciyaartaan? Kooxdee taageertaan?",
    ),
}
#: Languages of questions and their weights (English dominates).
QUESTION_LANGS: Final = {"en": 75, "fr": 6, "es": 5, "de": 5, "sw": 4, "ar": 3, "so": 2}
GREETINGS: Final = {
    "fr": ("Bonjour ! ", "Salut ", "Coucou de Lyon ! ", ""),
    "es": ("¡Hola! ", "Hola desde Madrid 👋 ", ""),
    "de": ("Hallo aus Köln! ", "Hallo ", ""),
    "sw": ("Habari! ", "Jambo! ", "Habari zenu, "),
    "ar": ("مرحبا ", "السلام عليكم ", ""),
    "so": ("Salaan! ", "Asc, ", ""),
}

EN_PREFIXES: Final = (
    "", "", "", "Hi! ", "Hello from {city} 👋 ", "Hey ", "Question for anyone in {camp}: ",
    "Dear friends in {camp}, ", "My daughter (9) wants to know: ", "Our class in {city} asks: ",
    "Genuine question: ", "Hi everyone! ",
)  # fmt: skip
SUFFIXES: Final = (
    "", "", "", " 🙏", " ❤️", " Thank you!!", " x", " 💛🌍", " (asking for my class)", " 😊",
)  # fmt: skip

#: A few questions everyone asks, each reworded several ways (near-duplicates).
REWORDINGS: Final = (
    (
        "What do you miss most about home?",
        "what do u miss the most from home",
        "What's the one thing you miss most about your home country?",
        "Do you miss home? What do you miss the most?",
        "What is the thing you miss the most from where you grew up?",
        "Honest question: what do you miss most about home?",
    ),
    (
        "What is your biggest dream?",
        "What do you dream of becoming?",
        "whats your dream for the future",
        "If you could be anything when you grow up, what would it be?",
        "What are your dreams for the future?",
    ),
    (
        "How can we help from here?",
        "What can people like me actually do to help?",
        "How can I help you from {city}?",
        "What's the best way to help people in the camps?",
        "What do you need most right now & how can we help?",
    ),
    (
        "Who is your favourite football player?",
        "who's your fav footballer??",
        "Which football team do you support?",
        "Do you play football? Who is your favourite player?",
    ),
)
#: Copy-paste campaigns: many accounts post the same text.
COPY_PASTE: Final = (
    "Hello from {teacher} class in {city}! We want to know: what is your favourite subject"
    " at school? @TakeActionCamps #TakeAction",
    "Copy & paste if you agree: every child deserves to go to school. What would help you"
    " learn? @TakeActionCamps #IWelcome",
)

FOLLOW_UPS: Final = (
    "Also, do you get to use computers at school?",
    "And what's your favourite song right now? 🎶",
    "Sorry, one more: what time does school start?",
    "PS my son says hi and wants to know your favourite football team ⚽",
    "Forgot to ask, what's the weather like today?",
)
REPLIES_TO_OTHERS: Final = (
    "great question! I'd love to know this too",
    "same question from my class 🙋",
    "following this thread 👀",
    "this! How can we help?",
    "my kids asked exactly the same thing last night 😄",
)
REPLIES_TO_CAMPAIGN: Final = (
    "Thank you for sharing {name}'s story. What is {name} studying now?",
    "Loved this video! Does {name} still play football every day?",
    "How can we send books to the school in {camp}?",
    "{name} is amazing. What would {name} like to be one day?",
    "Is there a way to write letters to the kids in {camp}?",
)

SUPPORT: Final[dict[str, tuple[str, ...]]] = {
    "en": (
        "Sending so much love to everyone in {camp} ❤️",
        "You are welcome here. Always.",
        "Just watched the video from {camp} and I'm in tears. Thank you for sharing your"
        " stories 🙏",
        "Proud to stand with refugees today and every day.",
        "Signed the petition and shared it with everyone I know 💪",
        "Amazing campaign @TakeActionCamps, more of this please!",
        "To the young people in {camp}: your voices matter. We hear you 💛",
        "Donated this morning. Small, but it's something.",
        "Our school assembly today was all about #IWelcome. The kids loved {name}'s video!",
        "Refugees are people with dreams like ours. Thank you for reminding us.",
        "Solidarity from {city} ✊",
        "{name}'s answer about her mum made me cry. What a strong young woman.",
        "This is what social media should be for 🌍",
        "Keep going, all of you. The world is watching and we care ❤️",
        "Shared with my book club. We're organising a fundraiser next month!",
    ),
    "fr": ("Tout mon soutien depuis Lyon ❤️", "Bravo pour cette campagne, vous êtes formidables !"),
    "es": ("Mucho ánimo desde Madrid 💛", "Gracias por compartir vuestras historias."),
    "de": ("Ihr seid willkommen! Grüße aus Hamburg ❤️", "Großartige Aktion, danke!"),
    "sw": ("Tuko pamoja nanyi! Mungu awabariki 🙏",),
    "ar": ("كل الدعم لكم من القلب ❤️",),
    "so": ("Waan idin la jirnaa! Allah ha idin barakeeyo 🙏",),
}
SUPPORT_LANGS: Final = {"en": 80, "fr": 5, "es": 5, "de": 5, "sw": 2, "ar": 2, "so": 1}

SPAM: Final = (
    "🚀🚀 $MOONX is about to 100x!! Get in before it's too late 👉 https://moonx-presale.example/join"
    " #crypto",
    "Buy 10K REAL followers for only $9.99 ✅ Fast delivery ✅ No password needed 👉"
    " https://fastfollow.example",
    "I made $4,500 this week trading from home. DM me 'INFO' to learn how 💸💸",
    "FREE USDT AIRDROP 🎁 first 500 wallets only! Claim: https://t.co/{code}",
    "Need more likes? Grow your account 🔥 100% organic 👉 https://growmyaccount.example/promo",
    "Check out my profile for exclusive content 😘 link in bio",
    "Hot deal!! Replica watches 90% off 👉 https://t.co/{code}",
    "Congrats! You've been selected for our giveaway 🎉 Claim your prize:"
    " https://prize-claim.example/win",
    "Crypto signals with 98% accuracy 📈 join our channel https://signals-vip.example",
    "Forex mentor here 👋 turned $200 into $12k in 3 weeks. Ask me how!",
    "🔥 Trending now 🔥 #crypto #NFT #bitcoin #giveaway #followback",
    "Promote your brand to 2M followers 📢 DM for rates",
    "Get verified in 24h ✔️ guaranteed 👉 https://verify-now.example",
    "Loan approved in 5 minutes, no credit check ✅ https://t.co/{code}",
    "Follow me and I'll follow back 💯 #followback",
    "$SAFU3 presale LIVE 🔥 https://t.co/{code} https://t.co/{code}",
)

ABUSE: Final[dict[str, tuple[str, ...]]] = {
    "en": (
        "Send them all back. Not our problem.",
        "Nobody asked you to come here. Go back to your own country.",
        "Why should I care? They're all freeloaders living off our taxes.",
        "stop guilt-tripping taxpayers with your sob stories 🙄",
        "These camps are full of criminals pretending to be victims.",
        "Fake refugees, real economic migrants. Wake up people.",
        "Close the borders. Every single one of them is a threat.",
        "Why don't you fix your own country instead of begging us for money?",
        "How much are they paying you to push this garbage?",
        "Ungrateful parasites. Should be thankful they get fed at all.",
        "Amnesty clowns at it again 🤡🤡",
        "Build the wall higher. Problem solved.",
        "Don't bring them here, we're full. Simple as that.",
        "you people are pathetic. nobody wants you",
        "Shut up and stop whining. Millions of our own are struggling.",
        "Another day, another invasion being sold as charity. Disgusting.",
        "Do you lot ever work or just wait for handouts?",
        "#IWelcome? Speak for yourself. I don't welcome any of them.",
        "Deport them all and lock up whoever runs this account.",
        "Imagine thinking these leeches deserve a platform 😂",
        "Stupid campaign for stupid people. Unfollowed.",
        "Hope the funding gets cut. Total waste of money.",
        "idiots like you are why this country is going down the drain",
        "{name} should be grateful instead of complaining.",
    ),
    "de": (
        "Schickt sie alle zurück. Wir haben genug eigene Probleme.",
        "Kein Cent mehr für diese Schmarotzer.",
    ),
    "fr": (
        "Rentrez chez vous, on n'a pas besoin de vous ici.",
        "Encore de la propagande pour nous culpabiliser. Ras-le-bol.",
        "Bande d'idiots, personne ne veut de vous ici. Dégagez !",
        "Vous êtes des parasites et des voleurs, dégagez.",
    ),
    "es": ("Que se vayan a su país. Aquí no caben más.", "Menuda panda de aprovechados."),
    "ar": (
        "ارجعوا إلى بلادكم، لا أحد يريدكم هنا",
        "يا أغبياء، لا أحد يريدكم هنا",
        "اللاجئون حشرات قذرة يجب طردهم",
    ),
}
ABUSE_LANGS: Final = {"en": 80, "de": 5, "fr": 5, "es": 5, "ar": 5}
