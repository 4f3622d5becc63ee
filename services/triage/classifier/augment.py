"""Counterfactual training texts: naming a group is not attacking it.

The public training sets teach a shortcut (see the model card, "The shortcut"):
nearly every training tweet that names immigrants or refugees is labelled
offensive, because HatEval's hate positives imply "offensive" and HatEval has
no offensive negatives. These templates, written for this project (none is
taken from a test suite, and none repeats the held-out examples quoted in
issue #16), pair every target group with both classes:

- ``hateful`` (offensive 1, hate 1): derogation, dehumanising comparisons,
  threats, implicit hate ("send them back"), hate phrased as an opinion or as
  a question, hate addressed to the campaign's refugees.
- ``supportive`` (offensive 0, hate 0): neutral mentions, praise, solidarity,
  the campaign's own questions, reporting, negated hate, counter-speech that
  quotes or names the hate in order to reject it, and "you"-contrast replies.
- ``profane`` (offensive 1, hate 0): profanity aimed at no group — for the
  offensive head only; whether it is abuse of anyone is the worker's rules'
  call, not the hate head's.

Every template is filled with every group (identity terms swapped in both
classes), so no group name can separate the classes. Deterministic; training
only (the functional suite in ``functional_suite.yaml`` is separate wording,
and no demo replay mention is copied here: the demo check stays honest).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml  # type: ignore[import-untyped, unused-ignore]

from services.triage.classifier.data import TRAIN, VAL, Example, normalise_text

SOURCE = "augment"
RULES = Path(__file__).resolve().parents[1] / "rules.yaml"


@dataclass(frozen=True, slots=True)
class Group:
    plural: str
    one: str  # with its article: "an immigrant"


GROUPS: tuple[Group, ...] = (
    Group("immigrants", "an immigrant"),
    Group("refugees", "a refugee"),
    Group("migrants", "a migrant"),
    Group("asylum seekers", "an asylum seeker"),
    Group("Muslims", "a Muslim"),
    Group("women", "a woman"),
    Group("Black people", "a Black person"),
    Group("gay people", "a gay person"),
    Group("trans people", "a trans person"),
    Group("disabled people", "a disabled person"),
    Group("Jews", "a Jew"),
    Group("foreigners", "a foreigner"),
    Group("Somalis", "a Somali"),
    Group("Syrians", "a Syrian"),
)

#: Insults for the {bad} slot (plural nouns) and the {vile} slot (adjectives).
BAD = ("parasites", "vermin", "rats", "animals", "scum", "savages", "cockroaches", "criminals")
VILE = ("disgusting", "worthless", "filthy", "subhuman", "dangerous", "vile", "inferior")

HATEFUL: tuple[str, ...] = (
    "{G} are {bad}.",
    "All {G} are {bad}, every single one of them.",
    "{G} are {vile} and always will be.",
    "I can't stand {G}, they are {vile}.",
    "{G} are a plague on this country.",
    "{G} are nothing but {bad} living off our taxes.",
    "{G} breed like {bad}.",
    "{G} are a disease that is spreading through our towns.",
    "Those {G} are {bad} and deserve to be handled like it.",
    "{G} should be shot.",
    "{G} should be hanged, all of them.",
    "I will kill any of the {G} that cross my path.",
    "We need to wipe out {G} before it is too late.",
    "Someone should burn down the camps of those {G}.",
    "{G} deserve to die.",
    "Send the {G} back where they came from.",
    "Send them all back, we don't want {G} here.",
    "{G} do not belong in this country.",
    "Our country was safe before the {G} arrived.",
    "{G} bring nothing but crime and disease.",
    "Another stabbing, another {one}. Funny how that keeps happening.",
    "Keep {G} out, close the borders for good.",
    "{G} will never be real citizens, they are {bad}.",
    "I think {G} are {vile}.",
    "In my opinion {G} are {bad}, sorry not sorry.",
    "Honestly, {G} are the worst thing that happened to us.",
    "Just saying what everyone thinks: {G} are {bad}.",
    "Why are {G} so {vile}?",
    "Why are all {G} {bad}?",
    "Isn't it obvious that {G} are {bad}?",
    "When will we finally get rid of {G}?",
    "Why should we let {G} live among us at all?",
    "Who else is sick of {G} invading our country?",
    "Is there anything more {vile} than {one}?",
    "I hate {G}. They are {vile}.",
    "{G}? {bad}, the lot of them.",
    "{one} is worth less than a dog.",
    "{G} are like {bad}: once you let one in, the rest follow.",
    "Never trust {one}: liars and thieves, every one of them.",
    "{G} are too stupid to live in a civilised country.",
    "{G} should be locked up in camps forever.",
    "Nobody wants to hear from these {G}, they are {bad}.",
    "{G} are taking over and nobody dares to say it.",
    "Every city that let {G} in is now a crime scene.",
    "Deport every last one of the {G}.",
    "{G} should go back to the hole they crawled out of.",
    "Funny how every problem starts when {G} show up.",
    "Let's be honest, {G} are just not as intelligent as us.",
    "Am I the only one who thinks {G} are ruining everything?",
    "Why do {G} always act like {bad}?",
    "Don't you think {G} should be kept away from our children?",
    "How much longer do we have to put up with {G}?",
    "What's the point of {G} anyway?",
    "{G} have no place in a decent society.",
    "I'd rather die than live next to {one}.",
    "Imagine being {one}. Pathetic.",
    "{G} need to learn their place.",
    "Just another {one} living off benefits, what a surprise.",
    "{G} are the lowest form of life.",
    "I loathe {G} with every fibre of my being.",
    "{G} are a blight on every street they live on.",
    "{G} are useless, they contribute nothing.",
    "Nothing good has ever come from {G}.",
    "{G} are dirty and smell terrible.",
    "{G} are a virus infecting the country.",
    "{G} are like a pest infestation.",
    "{G} are more ape than human.",
    "{G} are leeches sucking the country dry.",
    "{G} deserve a bullet.",
    "I'd happily run over a few {G}.",
    "Line the {G} up and be done with them.",
    "Time to start cleansing the streets of {G}.",
    "Give {G} an inch and they take our whole country.",
    "{G} are why our schools are failing.",
    "We were better off when {G} knew their place.",
    "{G} will replace us if we let them.",
    "Once the {G} move in, the house prices crash and crime goes up.",
    "{G} can never be trusted around our daughters.",
    "The only good {one} is one that left.",
    "I believe {G} are genetically inferior.",
    "In my humble opinion {G} should not have rights.",
    "I'm not racist, I just think {G} are cancerous.",
    "The truth nobody wants to admit: {G} are a burden.",
    "Don't get me started on {G}. Liars, all of them.",
    "I know {G}. They are lazy, every one of them.",
    "Met some {G} today. They were filthy, as always.",
    "Why do we even let {G} vote?",
    "Shouldn't {G} be banned from public places?",
    "Why are {G} allowed to breed?",
    "Isn't it time we kicked all {G} out?",
    "Who actually wants {G} living next door?",
    "Our town went downhill the day the {G} arrived.",
    "{G} come here for the benefits and nothing else.",
    "Put the {G} on a boat and don't let it come back.",
    "Before {G} came, you could leave your door unlocked.",
    "Wherever {G} go, crime follows. Just look at the numbers.",
    "Let the {G} stay and watch this country die.",
    "Real citizens first, {G} last.",
    "{G} will never fit in, they are a different breed.",
    "{G} are incapable of living like civilised people.",
    "I'm going to make the {G} on my street pay.",
    "Somebody should teach those {G} a lesson they won't forget.",
    "I will smash the next {one} I see in the face.",
    "{G} should be hunted down.",
    "If {G} don't leave, we will make them leave.",
    "Hope all the {G} drown on the way here.",
    "They are {G}, so of course they are thieves.",
    "Avoid {G}. Every one of them is a dirty liar.",
    "I've worked with {G}. Every single one was useless.",
    "{G}, the lot of them, are a waste of space.",
    "Honestly I think {G} are subhuman.",
    "From what I've seen, {G} are nothing more than animals.",
    "Am I wrong to think {G} are vermin?",
    "Why should {G} get anything from us?",
    # Added 2026-12-04 (issue 16, second pass): more frames for the categories the
    # functional suite found weak — implicit hate, threats, hate through a
    # pronoun, hate as an opinion — in wordings of their own (not the suite's).
    "Funny how the crime rate jumped right when the {G} showed up.",
    "{G} want our jobs, our homes and our women.",
    "This country belongs to its own people, not to {G}.",
    "My taxes shouldn't pay for {G} to sit around all day.",
    "Send every one of the {G} packing.",
    "Lock your doors, the {G} have moved into the area.",
    "There goes the neighbourhood: {G} just bought the house next door.",
    "Build a wall and let the {G} rot on the other side.",
    "We'd have no housing crisis if it weren't for {G}.",
    "{G} take and take and never give anything back.",
    "Hide your wallets, there are {G} around.",
    "No more {G}. We are full.",
    "{G} are an invasion, not a community.",
    "{G} ought to thank us for letting them breathe our air.",
    "Keep {G} away from our schools and our kids.",
    "Every time {G} move in, the whole street goes to ruin.",
    "Any {one} who comes near me is getting stabbed.",
    "I'm keeping a bullet for each of the {G} in town.",
    "The {G} on my street will get what's coming to them.",
    "Let's go and teach the {G} at the park a lesson tonight.",
    "I hope someone sets fire to the houses of the {G}.",
    "{G} had better watch their backs.",
    "We know where the {G} live.",
    "Next time I see {one} I'm breaking their legs.",
    "{G} should be strung up from lamp posts.",
    "Exterminate the {G}.",
    "It's open season on {G}.",
    "I want to see {G} suffer.",
    "Drown the {G} in the sea before they land.",
    "{G} keep moving into my area. They are filthy animals.",
    "Ever spent time around {G}? They stink.",
    "You know what {G} are like. They lie about everything.",
    "My town is full of {G} now. They are nothing but trouble.",
    "Look at those {G} over there. Disgusting creatures, all of them.",
    "There were {G} on the bus today. They should be thrown off.",
    "Saw a group of {G} at the station. Absolute {bad}.",
    "Heard some {G} are renting the flat upstairs. I hope they die.",
    "{G}... they are a waste of oxygen.",
    "If you ask me, {G} are a curse.",
    "It's just my opinion, but {G} are trash.",
    "I'm entitled to my view that {G} are less than human.",
    "As far as I'm concerned, {G} are garbage.",
    "My honest take: {G} make everything worse.",
    "I've always felt that {G} are a disgrace.",
    "Some will call it hate, I call it the truth: {G} are {bad}.",
    "Speaking for myself, I'd rather see {G} gone for good.",
    "I'm not afraid to say it: the world is worse with {G} in it.",
    "Does anyone else think {G} should be removed?",
    "Why won't the {G} just leave?",
    "Can someone explain why {G} are allowed anywhere near us?",
    "Remember when this town was lovely? That was before the {G}.",
    "The park was a great place until {G} started hanging around.",
    "Our schools were good until {G} turned up.",
    "Things were so much better when there were no {G} around.",
    "You can always tell when {G} have been somewhere: it's filthy.",
    "Notice how it's always {G} in the crime reports?",
    "{G} have ruined another perfectly good city.",
    "{G} are the scum of the earth.",
    "{G} are revolting creatures.",
    "I detest {G} and everything about them.",
    "{G} are an embarrassment to the human race.",
    "Everything about {G} makes me sick.",
    "Unpopular opinion: {G} are worthless.",
    "Hot take: {G} should never have been let in.",
    "Maybe it's just me, but {G} are repugnant.",
    "Nobody will say it, so I will: {G} are lesser beings.",
)

#: Hate addressed to the refugees the campaign films.
HATEFUL_REPLIES: tuple[str, ...] = (
    "Go back to your own country, nobody wants you here.",
    "Your camp is where you belong, you parasites.",
    "You people are a burden on the whole world.",
    "Why don't you all go back where you came from?",
    "You are vermin and you will never be welcome here.",
    "Nobody cares about your stupid questions, you are animals.",
    "I hope your camp burns down.",
    "You should all be sent back and left there.",
    "Why should my taxes feed you parasites?",
    "You breed like rats and then beg for money.",
    "Don't come here, we will make sure you regret it.",
    "You are not refugees, you are invaders.",
    "These so-called refugees are just criminals looking for free money.",
    "How long until these refugees start raping our women?",
    "Refugees welcome? More like refugees go home.",
    "Why do we keep importing these savages?",
    "Stop begging for our money, you freeloaders.",
    "No one invited you here. Africa is where you belong.",
    "Your camp is a zoo and you are the animals in it.",
    "These people should never be allowed into Europe.",
    "Take your videos and go back to your hut.",
    "Refugees? Parasites with smartphones.",
    "Every one of these camp kids will grow up to be a criminal.",
    "Why should we care about a bunch of spongers in a camp?",
    "Close the camps and put the lot of them on a plane home.",
    "We will never accept you, so don't even try.",
    "Why should anyone pay for your camp? Work for a living.",
    "You are all freeloaders, every one of you in that camp.",
    "Enjoy the free food while it lasts, leeches.",
    "None of you will ever be welcome in Europe.",
    "Your so-called camp is just a breeding ground for criminals.",
)

SUPPORTIVE: tuple[str, ...] = (
    "{G} are our neighbours and friends.",
    "I met {one} at the library today and we talked for hours.",
    "There are many {G} living in my town.",
    "{G} make our communities stronger.",
    "Proud to stand beside {G}, now and always.",
    "{G} are welcome here.",
    "I love working with {G}, they are brilliant colleagues.",
    "{G} deserve the same rights as everyone else.",
    "Solidarity with {G} everywhere.",
    "{G} are people, just like you and me.",
    "So many {G} volunteer at our food bank every week.",
    "What do you want everyone to understand about {G}?",
    "How can I support {G} in my city?",
    "What is the hardest part of being {one} today?",
    "What do {G} wish other people understood?",
    "Is there a group near me that helps {G}?",
    "Why do some people still treat {G} so badly?",
    "A new report shows that {G} face discrimination at work.",
    "The council met with {G} to talk about housing.",
    "Researchers interviewed 200 {G} about their first year here.",
    "{G} are not {bad}.",
    "{G} are not {vile}, and saying so is wrong.",
    "I don't hate {G}. Why would I?",
    "For the record, I have nothing against {G}.",
    "No one should ever claim {G} are {bad}.",
    "It is wrong to call {G} {bad}.",
    "Every {one} deserves the same dignity as anyone else.",
    "{G} do not deserve to die, nobody does.",
    "Nobody should threaten {G}.",
    "Saying '{G} are {bad}' is hate speech, plain and simple.",
    "'{G} are {vile}' — no. They are people like us.",
    "If you think {G} are {bad}, the problem is you.",
    "I'm so tired of people calling {G} {bad}.",
    "Reported this account for calling {G} {bad}.",
    "Someone just told me '{G} should go back'. I told them {G} belong here.",
    "Calling {G} {bad} says more about you than about them.",
    "People who say {G} are {vile} have never met {one}.",
    "Stop spreading hate about {G}.",
    "Hate against {G} has no place here.",
    "When people yell 'send {G} back', I say: they are home.",
    "Why is it so hard for some people to accept {G}?",
    "My best friend is {one} and I am proud of her.",
    "{G} are just as human as everybody else.",
    "I've never met {one} who wasn't kind to me.",
    "{G} aren't a burden, they're a gift.",
    "It's disgusting how people talk about {G} online.",
    "If someone calls {G} a virus, tell them they are wrong.",
    "Nobody deserves to be called a parasite, least of all {G}.",
    "Threats against {G} must be reported to the police.",
    "I'll defend {G} against anyone who insults them.",
    "The comments calling {G} filthy made me sick.",
    "Can we stop pretending that hating {G} is normal?",
    "Why do people think {G} are dangerous? They are not.",
    "{G} are not lazy, they work harder than most.",
    "You can't judge all {G} by what one person did.",
    "Where can I volunteer to teach {G} English?",
    "Which charities actually help {G}?",
    "How can our school welcome {G} better?",
    "What support do {G} get when they first arrive?",
    "I sat next to {one} on the train and we laughed all the way.",
    "{G} were at the festival today, it was lovely.",
    "{G} are so talented, I love this campaign.",
    # Added 2026-12-04: the same frames and words as the new hateful ones, not hateful.
    "Funny how people blame {G} for crime when the numbers say otherwise.",
    "Our street got better when {G} arrived.",
    "My taxes are well spent helping {G} settle in.",
    "{G} give so much back to this country.",
    "We are not full, there is room for {G}.",
    "I hope {G} find peace and safety here.",
    "If you ask me, {G} are a blessing.",
    "It's just my opinion, but {G} are great neighbours.",
    "My honest take: {G} make everything better.",
    "As far as I'm concerned, {G} are family.",
    "{G} moved into my area. They are lovely.",
    "Ever spent time around {G}? They are so generous.",
    "There were {G} on the bus today. They helped an old man with his bags.",
    "Anyone who threatens {G} should be arrested.",
    "Saying you want to hurt {G} is a crime, not an opinion.",
    "Nobody should have to watch their back just for being {one}.",
    "People who say we are full of {G} should look at the empty houses.",
    "'{G} are an invasion' is a lie that gets people hurt.",
    "Somebody threatened {G} on my street. We all stood with them.",
    "I want to see {G} thrive.",
    "Why won't people just let {G} live in peace?",
    "Does anyone know how to help {G} find work?",
    "Some call {G} a curse. I call them my friends.",
    "They told me {G} are trash. I told them to stop.",
    "Where do most {G} in this country live?",
    "Do {G} in your city get treated fairly by landlords?",
    "How do schools here treat {G}?",
    "Where can {G} live safely when they first arrive?",
    "I'd never call {G} {vile}.",
    "It is simply not true that {G} are {bad}.",
    "Don't ever tell me {G} are {vile}, because they aren't.",
    "Who says {G} are {bad}? Not me, not ever.",
    "I have never hated {G} and I never will.",
    "My daughter is writing her school project on {G}.",
    "Our class visited an exhibition about {G}.",
    "This town was lovely before, and it's even better now with {G}.",
    "The park is a great place since {G} started the community garden.",
    "Things got so much better when {G} opened the new bakery.",
    "Unpopular opinion: {G} are the best neighbours.",
    "Hot take: we should welcome more {G}.",
    "Maybe it's just me, but {G} are wonderful company.",
    "Everything about the way people treat {G} makes me sick.",
    "Notice how {G} are always the first to volunteer?",
)

#: Supportive replies to the refugees the campaign films ("you"-contrast).
SUPPORTIVE_REPLIES: tuple[str, ...] = (
    "You aren't a burden, you are our future neighbours.",
    "Don't listen to the haters, you belong here.",
    "People call you invaders but you are just kids who want to go to school.",
    "Some say refugees should go home. You are home wherever you are safe.",
    "You are not animals or criminals, you are people with dreams.",
    "Ignore the trolls calling you parasites. We stand with you.",
    "What do you say to people who want you gone?",
    "How do you cope when people say refugees are dangerous?",
    "Refugees welcome, always.",
    "What should kids in my school learn about life in the camps?",
    "Your courage inspires me. Thank you for sharing your story.",
    "Is it true that refugees in the camp can't work? That seems unfair.",
    "Why are refugees treated so badly by some governments?",
    "Do refugees in Kakuma get to choose what they study?",
    "Not all refugees are the same, each of you has your own story.",
    "Refugees are not criminals, they are fleeing danger.",
    "Refugees don't steal jobs, they create them.",
    "I used to think refugees were a problem. Your videos changed my mind.",
    "People online call you freeloaders. They have never met you.",
    "Nobody should tell you to stay in Africa. Come study with us!",
    "Why do people say refugees are criminals? Your videos show the opposite.",
    "Your camp sounds tough, but your music is amazing.",
    "Some people say you should be sent home. I say you are welcome here.",
    "We will always stand with you, whatever the trolls say.",
    "Why should anyone be afraid of your camp? You are kids.",
    "None of you deserve the hate you get online.",
)

#: Profanity aimed at no group (offensive 1, hate 0).
PROFANE: tuple[str, ...] = (
    "Holy shit, this campaign is amazing.",
    "This fucking weather is killing me.",
    "Damn, I wish I could help more.",
    "That answer was so fucking beautiful I cried.",
    "My bus was late again, what a shitty day.",
    "Fuck yes, the kids in Kakuma won the football match!",
    "Hell yeah, refugees welcome!",
    "This stupid printer never works.",
)


def _fill(template: str, group: Group, bad: str, vile: str) -> str:
    text = template.format(G=group.plural, one=group.one, bad=bad, vile=vile)
    return text[0].upper() + text[1:]


def campaign_texts(rules: Path = RULES) -> list[str]:
    """The campaign's own description and example questions (the rules file)."""
    campaign = yaml.safe_load(rules.read_text(encoding="utf-8")).get("campaign", {})
    return [str(campaign.get("description", "")), *map(str, campaign.get("examples", []))]


#: Every k-th template (by its index in its class) is held out as validation
#: data: it calibrates the hate threshold next to HatEval and Davidson (a
#: threshold that also holds for explicit and implicit hate on these groups),
#: and is never trained on. The functional suite is separate wording again.
HOLD_OUT_EVERY = 5


def augmented_examples() -> list[Example]:
    """The training templates (those not held out); see :func:`augmented_split`."""
    return augmented_split()[0]


def augmented_validation() -> list[Example]:
    """The held-out templates, every group (validation only)."""
    return augmented_split()[1]


def augmented_split() -> tuple[list[Example], list[Example]]:
    """(training, held-out) examples: templates with index % HOLD_OUT_EVERY == 2 held out."""
    train: list[Example] = []
    val: list[Example] = []
    for e, held_out in _all_examples():
        if held_out:
            val.append(Example(e.text, SOURCE, VAL, e.offensive, e.hate))
        else:
            train.append(e)
    return train, val


def _all_examples() -> list[tuple[Example, bool]]:
    """Every template with every group (insult slots rotate deterministically),
    and the campaign's own texts (not offensive, not hate); held out or not."""
    out: list[tuple[Example, bool]] = [
        (Example(normalise_text(t), SOURCE, TRAIN, offensive=0, hate=0), False)
        for t in campaign_texts()
        if t.strip()
    ]
    for gi, group in enumerate(GROUPS):
        for ti, template in enumerate(HATEFUL):
            k = gi + ti
            text = _fill(template, group, BAD[k % len(BAD)], VILE[k % len(VILE)])
            example = Example(normalise_text(text), SOURCE, TRAIN, offensive=1, hate=1)
            out.append((example, ti % HOLD_OUT_EVERY == 2))
        for ti, template in enumerate(SUPPORTIVE):
            k = gi * 3 + ti
            text = _fill(template, group, BAD[k % len(BAD)], VILE[k % len(VILE)])
            example = Example(normalise_text(text), SOURCE, TRAIN, offensive=0, hate=0)
            out.append((example, ti % HOLD_OUT_EVERY == 2))
    for i, t in enumerate(HATEFUL_REPLIES):
        out.append((Example(normalise_text(t), SOURCE, TRAIN, 1, 1), i % HOLD_OUT_EVERY == 2))
    for i, t in enumerate(SUPPORTIVE_REPLIES):
        out.append((Example(normalise_text(t), SOURCE, TRAIN, 0, 0), i % HOLD_OUT_EVERY == 2))
    out += [(Example(normalise_text(t), SOURCE, TRAIN, 1, 0), False) for t in PROFANE]
    seen: set[str] = set()
    unique = []
    for e, held_out in out:
        if e.text not in seen:
            seen.add(e.text)
            unique.append((e, held_out))
    return unique
